// crd-cel checks the CRDs with Kubernetes' own apiextensions code, the code
// kube-apiserver runs on them:
//
//   - each CRD as on create: structural schema, CEL compilation and the CEL
//     cost budgets (a CRD whose rules may cost too much is refused);
//   - custom resources as on create: defaults, the OpenAPI schema, CEL rules.
//
// Usage:
//
//	crd-cel -crd CRD.yaml... [-objects YAML...] [-cases CASES.yaml]
//
// -objects: every LLMEngine/LLMModel in these files must be accepted.
// -cases: tests/crds/cel-cases.yaml; each case's spec, in an object of its
// kind, must be refused with a message containing `rejects`, or accepted.
// Exit status 1 on any failure.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

// kind holds what the apiserver derives from one version of a CRD.
type kind struct {
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

type checker struct {
	scheme   *runtime.Scheme
	kinds    map[string]kind // "group/version/Kind"
	failures int
}

func (c *checker) fail(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	c.failures++
}

// documents splits a YAML file into its non-empty documents.
func documents(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var probe map[string]interface{}
		if err := yaml.Unmarshal(doc, &probe); err == nil && len(probe) > 0 {
			docs = append(docs, doc)
		}
	}
}

// decode reads YAML as the apiserver reads JSON: integers stay int64.
func decode(doc []byte, into interface{}) error {
	asJSON, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	return utiljson.Unmarshal(asJSON, into)
}

func countRules(s *apiextensions.JSONSchemaProps) int {
	if s == nil {
		return 0
	}
	n := len(s.XValidations)
	for _, p := range s.Properties {
		p := p
		n += countRules(&p)
	}
	if s.Items != nil {
		n += countRules(s.Items.Schema)
	}
	if s.AdditionalProperties != nil {
		n += countRules(s.AdditionalProperties.Schema)
	}
	return n
}

func (c *checker) addCRD(path string, doc []byte) {
	var v1 apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(doc, &v1); err != nil {
		c.fail("%s: %v", path, err)
		return
	}
	c.scheme.Default(&v1)
	var crd apiextensions.CustomResourceDefinition
	if err := c.scheme.Convert(&v1, &crd, nil); err != nil {
		c.fail("%s: %v", path, err)
		return
	}
	if errs := validation.ValidateCustomResourceDefinition(context.Background(), &crd); len(errs) > 0 {
		c.fail("CRD %s is refused:", crd.Name)
		for _, e := range errs {
			fmt.Printf("    %v\n", e)
		}
		return
	}
	rules := 0
	for _, version := range crd.Spec.Versions {
		// The internal type keeps a schema shared by all versions at the top.
		validation := crd.Spec.Validation
		if version.Schema != nil {
			validation = version.Schema
		}
		props := validation.OpenAPIV3Schema
		structural, err := structuralschema.NewStructural(props)
		if err != nil {
			c.fail("CRD %s %s: %v", crd.Name, version.Name, err)
			continue
		}
		schema, _, err := apiservervalidation.NewSchemaValidator(props)
		if err != nil {
			c.fail("CRD %s %s: %v", crd.Name, version.Name, err)
			continue
		}
		rules += countRules(props)
		key := crd.Spec.Group + "/" + version.Name + "/" + crd.Spec.Names.Kind
		c.kinds[key] = kind{structural, schema, cel.NewValidator(structural, true, celconfig.PerCallLimit)}
	}
	fmt.Printf("ok   CRD %s accepted: structural schema, %d CEL rules compiled within the cost budgets\n", crd.Name, rules)
}

// admit checks one custom resource as the apiserver does on create; nil
// errors and false when no CRD of this run defines its kind.
func (c *checker) admit(obj map[string]interface{}) (field.ErrorList, bool) {
	apiVersion, _ := obj["apiVersion"].(string)
	kindName, _ := obj["kind"].(string)
	k, found := c.kinds[apiVersion+"/"+kindName]
	if !found {
		return nil, false
	}
	structuraldefaulting.Default(obj, k.structural)
	errs := apiservervalidation.ValidateCustomResource(nil, obj, k.schema)
	celErrs, _ := k.cel.Validate(context.Background(), nil, k.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...), true
}

func (c *checker) checkObjects(path string) {
	docs, err := documents(path)
	if err != nil {
		c.fail("%v", err)
		return
	}
	for i, doc := range docs {
		var obj map[string]interface{}
		if err := decode(doc, &obj); err != nil {
			c.fail("%s #%d: %v", path, i+1, err)
			continue
		}
		name := ""
		if metadata, ok := obj["metadata"].(map[string]interface{}); ok {
			name, _ = metadata["name"].(string)
		}
		errs, known := c.admit(obj)
		switch {
		case !known:
		case len(errs) > 0:
			c.fail("%s %s (%s #%d) refused: %v", obj["kind"], name, path, i+1, errs.ToAggregate())
		default:
			fmt.Printf("ok   %s %s (%s #%d) accepted\n", obj["kind"], name, path, i+1)
		}
	}
}

type celCase struct {
	Kind    string                 `json:"kind"`
	Case    string                 `json:"case"`
	Spec    map[string]interface{} `json:"spec"`
	Rejects string                 `json:"rejects"`
}

func (c *checker) checkCases(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		c.fail("%v", err)
		return
	}
	var cases []celCase
	if err := decode(data, &cases); err != nil {
		c.fail("%s: %v", path, err)
		return
	}
	for _, tc := range cases {
		obj := map[string]interface{}{
			"apiVersion": "llm.injector.dev/v1alpha1",
			"kind":       tc.Kind,
			"metadata":   map[string]interface{}{"name": "x", "namespace": "team-a"},
			"spec":       tc.Spec,
		}
		errs, known := c.admit(obj)
		label := tc.Kind + " " + tc.Case
		switch {
		case !known:
			c.fail("%s: no CRD for kind %s", label, tc.Kind)
		case tc.Rejects == "" && len(errs) > 0:
			c.fail("%s: refused, want accepted: %v", label, errs.ToAggregate())
		case tc.Rejects == "":
			fmt.Printf("ok   %s: accepted\n", label)
		case len(errs) == 0:
			c.fail("%s: accepted, want refused with %q", label, tc.Rejects)
		case !strings.Contains(errs.ToAggregate().Error(), tc.Rejects):
			c.fail("%s: refused, but without %q: %v", label, tc.Rejects, errs.ToAggregate())
		default:
			fmt.Printf("ok   %s: refused (%q)\n", label, tc.Rejects)
		}
	}
}

func main() {
	var crds, objects files
	cases := flag.String("cases", "", "the CEL case table (tests/crds/cel-cases.yaml)")
	flag.Var(&crds, "crd", "a CRD file (repeatable)")
	flag.Var(&objects, "objects", "a file of objects that must be accepted (repeatable)")
	flag.Parse()
	c := &checker{scheme: runtime.NewScheme(), kinds: map[string]kind{}}
	apiextensionsinstall.Install(c.scheme)
	for _, path := range crds {
		docs, err := documents(path)
		if err != nil {
			c.fail("%v", err)
		}
		for _, doc := range docs {
			c.addCRD(path, doc)
		}
	}
	for _, path := range objects {
		c.checkObjects(path)
	}
	if *cases != "" {
		c.checkCases(*cases)
	}
	if c.failures > 0 {
		fmt.Printf("%d failure(s)\n", c.failures)
		os.Exit(1)
	}
	fmt.Println("all passed")
}
