// admission runs Kubernetes' own mutating-admission-webhook plugin (the code
// kube-apiserver uses to call mutating webhooks) on pods, against a running
// `llm-injector serve`, and compares each pod it makes with what
// `llm-injector inject` prints for the same pod.
//
// The plugin reads the MutatingWebhookConfiguration of webhook-config/ (its
// clientConfig pointed at the given URL and CA), evaluates its rules,
// namespaceSelector and CEL matchConditions, calls the webhook over TLS,
// applies the JSONPatch and decodes the result into the Pod type of
// k8s.io/api. What it does not do is what only kube-apiserver's registry
// does: defaulting of core types and validation.
//
// Usage:
//
//	admission -config 60-mutating-webhook.yaml -url https://127.0.0.1:PORT -ca ca.crt \
//	  -injector llm-injector -catalog DIR POD.yaml|REVIEW.json...
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/mutating"
	"k8s.io/apiserver/pkg/authentication/user"
	webhookutil "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/client-go/informers"
	fakeclientset "k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"
)

// readPod takes a Pod (YAML or JSON) or an AdmissionReview holding one.
func readPod(path string) (*corev1.Pod, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	asJSON, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Kind    string `json:"kind"`
		Request *struct {
			Object json.RawMessage `json:"object"`
		} `json:"request"`
	}
	if err := json.Unmarshal(asJSON, &probe); err != nil {
		return nil, err
	}
	if probe.Kind == "AdmissionReview" && probe.Request != nil {
		asJSON = probe.Request.Object
	}
	pod := &corev1.Pod{}
	if err := json.Unmarshal(asJSON, pod); err != nil {
		return nil, err
	}
	return pod, nil
}

func config(path, url, caFile string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	configuration := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := yaml.UnmarshalStrict(data, configuration); err != nil {
		return nil, err
	}
	for i := range configuration.Webhooks {
		hook := &configuration.Webhooks[i]
		setDefaults(hook)
		full := url + *hook.ClientConfig.Service.Path
		hook.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &full, CABundle: ca}
	}
	return configuration, nil
}

// setDefaults gives a webhook the defaults the apiserver stores with it
// (SetDefaults_MutatingWebhook of k8s.io/kubernetes, which is not in the
// libraries): without them a missing selector would match nothing.
func setDefaults(hook *admissionregistrationv1.MutatingWebhook) {
	if hook.FailurePolicy == nil {
		policy := admissionregistrationv1.Fail
		hook.FailurePolicy = &policy
	}
	if hook.MatchPolicy == nil {
		policy := admissionregistrationv1.Equivalent
		hook.MatchPolicy = &policy
	}
	if hook.NamespaceSelector == nil {
		hook.NamespaceSelector = &metav1.LabelSelector{}
	}
	if hook.ObjectSelector == nil {
		hook.ObjectSelector = &metav1.LabelSelector{}
	}
	if hook.TimeoutSeconds == nil {
		seconds := int32(10)
		hook.TimeoutSeconds = &seconds
	}
	if hook.ReinvocationPolicy == nil {
		policy := admissionregistrationv1.NeverReinvocationPolicy
		hook.ReinvocationPolicy = &policy
	}
}

// asMap is a value as JSON sees it, for comparing.
func asMap(v interface{}) (map[string]interface{}, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]interface{}
	return m, json.Unmarshal(data, &m)
}

func flatten(prefix string, v interface{}, out map[string]interface{}) {
	switch v := v.(type) {
	case map[string]interface{}:
		for k, item := range v {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, item, out)
		}
		if len(v) == 0 {
			out[prefix] = v
		}
	case []interface{}:
		for i, item := range v {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), item, out)
		}
		if len(v) == 0 {
			out[prefix] = v
		}
	default:
		out[prefix] = v
	}
}

// differences lists the paths where a and b differ.
func differences(a, b map[string]interface{}) []string {
	fa, fb := map[string]interface{}{}, map[string]interface{}{}
	flatten("", a, fa)
	flatten("", b, fb)
	var diffs []string
	for path, va := range fa {
		if vb, ok := fb[path]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: inject prints %v, the apiserver's plugin has nothing", path, va))
		} else if !reflect.DeepEqual(va, vb) {
			diffs = append(diffs, fmt.Sprintf("%s: inject prints %v, the apiserver's plugin has %v", path, va, vb))
		}
	}
	for path, vb := range fb {
		if _, ok := fa[path]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only the apiserver's plugin has %v", path, vb))
		}
	}
	sort.Strings(diffs)
	return diffs
}

func main() {
	configPath := flag.String("config", "", "the MutatingWebhookConfiguration (webhook-config/60-mutating-webhook.yaml)")
	url := flag.String("url", "", "where llm-injector serve listens, e.g. https://127.0.0.1:18443")
	caFile := flag.String("ca", "", "the CA of its certificate")
	injector := flag.String("injector", "", "the llm-injector binary")
	catalog := flag.String("catalog", "", "the catalog serve uses")
	namespace := flag.String("namespace", "team-a", "namespace of the pods")
	klog.InitFlags(nil)
	flag.Parse()

	configuration, err := config(*configPath, *url, *caFile)
	if err != nil {
		fmt.Printf("FAIL webhook configuration: %v\n", err)
		os.Exit(1)
	}
	stop := make(chan struct{})
	defer close(stop)
	// What the apiserver's informers would hold: the configuration and the
	// namespace, with the name label every namespace gets.
	client := fakeclientset.NewSimpleClientset(configuration, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: *namespace, Labels: map[string]string{"kubernetes.io/metadata.name": *namespace},
	}})
	factory := informers.NewSharedInformerFactory(client, 0)
	plugin, err := mutating.NewMutatingWebhook(nil)
	if err != nil {
		fmt.Printf("FAIL plugin: %v\n", err)
		os.Exit(1)
	}
	resolver, err := webhookutil.NewDefaultAuthenticationInfoResolver("")
	if err != nil {
		fmt.Printf("FAIL plugin: %v\n", err)
		os.Exit(1)
	}
	plugin.SetAuthenticationInfoResolverWrapper(func(webhookutil.AuthenticationInfoResolver) webhookutil.AuthenticationInfoResolver { return resolver })
	plugin.SetServiceResolver(webhookutil.NewDefaultServiceResolver())
	plugin.SetExternalKubeClientSet(client)
	plugin.SetExternalKubeInformerFactory(factory)
	factory.Start(stop)
	factory.WaitForCacheSync(stop)
	if err := plugin.ValidateInitialization(); err != nil {
		fmt.Printf("FAIL plugin: %v\n", err)
		os.Exit(1)
	}
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	objectInterfaces := admission.NewObjectInterfacesFromScheme(scheme)

	failures := 0
	for _, path := range flag.Args() {
		pod, err := readPod(path)
		if err != nil {
			fmt.Printf("FAIL %s: %v\n", path, err)
			failures++
			continue
		}
		pod.Namespace = *namespace
		before := pod.DeepCopy()
		attributes := admission.NewAttributesRecord(pod, nil, corev1.SchemeGroupVersion.WithKind("Pod"),
			*namespace, pod.Name, corev1.SchemeGroupVersion.WithResource("pods"), "", admission.Create,
			&metav1.CreateOptions{}, false, &user.DefaultInfo{Name: "trial"})
		if err := plugin.Admit(context.Background(), attributes, objectInterfaces); err != nil {
			fmt.Printf("FAIL %s: refused: %v\n", path, err)
			failures++
			continue
		}
		admitted := attributes.GetObject().(*corev1.Pod)
		// inject on the same pod, as the webhook received it.
		input, _ := json.Marshal(before)

		cmd := exec.Command(*injector, "inject", "-f", "-", "--catalog", *catalog, "-n", *namespace)
		cmd.Stdin = bytes.NewReader(input)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		printed, err := cmd.Output()
		if err != nil {
			fmt.Printf("FAIL %s: llm-injector inject: %v: %s\n", path, err, stderr.String())
			failures++
			continue
		}
		printedJSON, err := yaml.YAMLToJSON(printed)
		if err != nil {
			fmt.Printf("FAIL %s: inject output: %v\n", path, err)
			failures++
			continue
		}
		// Kubernetes' Pod type must keep every field inject prints (a field it
		// does not know would be dropped by any apiserver of this version).
		var raw map[string]interface{}
		typedPod := &corev1.Pod{}
		if err := json.Unmarshal(printedJSON, &raw); err != nil {
			fmt.Printf("FAIL %s: inject output: %v\n", path, err)
			failures++
			continue
		}
		if err := json.Unmarshal(printedJSON, typedPod); err != nil {
			fmt.Printf("FAIL %s: inject output is not a Pod: %v\n", path, err)
			failures++
			continue
		}
		want, err := asMap(typedPod)
		if err != nil {
			panic(err)
		}
		var lost []string
		for _, d := range differences(raw, want) {
			if !strings.Contains(d, "only the apiserver's plugin has") {
				lost = append(lost, d)
			}
		}
		if len(lost) > 0 {
			fmt.Printf("FAIL %s: Kubernetes' Pod type drops %d field(s) inject prints:\n", path, len(lost))
			for _, d := range lost {
				fmt.Printf("    %s\n", d)
			}
			failures++
			continue
		}
		// The apiserver sets apiVersion and kind when it writes a pod out.
		admitted.APIVersion, admitted.Kind = "v1", "Pod"
		got, err := asMap(admitted)
		if err != nil {
			panic(err)
		}
		changed := !reflect.DeepEqual(before, admitted)
		status := admitted.Annotations["llm.injector.dev/status"]
		if diffs := differences(want, got); len(diffs) > 0 {
			fmt.Printf("FAIL %s: the admitted pod differs from inject's in %d place(s):\n", path, len(diffs))
			for _, d := range diffs {
				fmt.Printf("    %s\n", d)
			}
			failures++
			continue
		}
		what := "unchanged (not sent, or allowed as is)"
		if changed {
			what = fmt.Sprintf("injected, %d init containers, status %s", len(admitted.Spec.InitContainers), shorten(status))
		}
		fmt.Printf("ok   %s: %s; identical to inject's\n", path, what)
	}
	if failures > 0 {
		fmt.Printf("%d failure(s)\n", failures)
		os.Exit(1)
	}
	fmt.Println("all passed")
}

func shorten(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	if s == "" {
		return "(none)"
	}
	return strings.TrimSpace(s)
}
