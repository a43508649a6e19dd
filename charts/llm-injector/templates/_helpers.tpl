{{/* Chart name, at most 63 characters. */}}
{{- define "llm-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of every object: the release name when it already contains the chart
name (`helm install llm-injector ...` gives "llm-injector"), else
<release>-<chart>. Also the Service name, so the serving certificate is for
<fullname>.<namespace>.svc.
*/}}
{{- define "llm-injector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "llm-injector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the webhook pods; never change them after install. */}}
{{- define "llm-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-injector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "llm-injector.labels" -}}
helm.sh/chart: {{ include "llm-injector.chart" . }}
{{ include "llm-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: admission-webhook
app.kubernetes.io/part-of: llm-injector
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The Secret holding tls.crt and tls.key (and ca.crt except in existing mode).
managed mode's has its own name: the server creates it, and a Secret Helm made
in another mode (deleted by Helm on the switch) must not be taken for it.
*/}}
{{- define "llm-injector.tlsSecretName" -}}
{{- if eq .Values.certs.mode "existing" }}
{{- required "certs.existing.secretName is required with certs.mode=existing" .Values.certs.existing.secretName }}
{{- else if eq .Values.certs.mode "managed" }}
{{- printf "%s-certs" (include "llm-injector.fullname" .) }}
{{- else }}
{{- printf "%s-tls" (include "llm-injector.fullname" .) }}
{{- end }}
{{- end }}

{{/* DNS names of the serving certificate: every name the Service answers to. */}}
{{- define "llm-injector.dnsNames" -}}
{{- $svc := include "llm-injector.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{- define "llm-injector.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
A webhook's clientConfig: the Service, a path on it, and the caBundle when the
chart knows it (with cert-manager, its cainjector fills it in). Takes a dict:
root (the chart's context), path, caBundle.
*/}}
{{- define "llm-injector.webhookClientConfig" -}}
service:
  name: {{ include "llm-injector.fullname" .root }}
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path }}
  port: {{ .root.Values.service.port }}
{{- if .caBundle }}
caBundle: {{ .caBundle }}
{{- end }}
{{- end }}

{{/*
The namespaces whose pods are injected: all but the release namespace, the
listed system namespaces and those labelled llm.injector.dev/injection=disabled.
*/}}
{{- define "llm-injector.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- toYaml (uniq (prepend .Values.webhook.excludeNamespaces .Release.Namespace)) | nindent 6 }}
  - key: llm.injector.dev/injection
    {{- if .Values.webhook.namespaceOptIn }}
    operator: In
    values: [enabled]
    {{- else }}
    operator: NotIn
    values: [disabled]
    {{- end }}
{{- end }}

{{/*
CEL: the metadata at the given path has an annotation or label key that
contains "llm" or "injector" (any case), as the opt-in key and its usual typos
do; the server then says exactly what is wrong with it.
*/}}
{{- define "llm-injector.optInLikeKeyBesideInjection" -}}
(has({{ . }}.annotations) && {{ . }}.annotations.exists(k, (k.lowerAscii().contains('llm') || k.lowerAscii().contains('injector')) && !(k in ['llm.injector.dev/model', 'llm.injector.dev/status']))) || (has({{ . }}.labels) && {{ . }}.labels.exists(k, (k.lowerAscii().contains('llm') || k.lowerAscii().contains('injector')) && k != 'llm.injector.dev/model'))
{{- end }}

{{/*
CEL, for injection.mode policy|both: a pod injected already (by an admission
policy) is sent only for a key like the opt-in beside the keys injection reads
and writes; any other pod as with "llm-injector.optInLikeKey".
*/}}
{{- define "llm-injector.optInLikeKeyOfAnyPod" -}}
has({{ . }}.annotations) && 'llm.injector.dev/status' in {{ . }}.annotations ? ({{ include "llm-injector.optInLikeKeyBesideInjection" . }}) : ({{ include "llm-injector.optInLikeKey" . }})
{{- end }}

{{- define "llm-injector.optInLikeKey" -}}
(has({{ . }}.annotations) && {{ . }}.annotations.exists(k, k.lowerAscii().contains('llm') || k.lowerAscii().contains('injector'))) || (has({{ . }}.labels) && {{ . }}.labels.exists(k, k.lowerAscii().contains('llm') || k.lowerAscii().contains('injector')))
{{- end }}
