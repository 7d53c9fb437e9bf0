// gitops-check evaluates BatchRollout objects the way GitOps tools do, with their own libraries:
// Argo CD's health Lua under gopher-lua (the interpreter Argo CD embeds), kstatus's status.Compute
// (what Flux and kubectl's kstatus users run) and Flux's healthCheckExprs under cel-go, in the
// order Flux's CEL status reader applies them. The tests run it on captures from the local cluster.
//
//	gitops-check lua-tests DIR                          # DIR/health_test.yaml against DIR/health.lua
//	gitops-check verdicts LUA KUSTOMIZATION OBJECT...   # one JSON line of verdicts per object
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gitops-check:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 2 && args[0] == "lua-tests":
		return luaTests(args[1])
	case len(args) >= 4 && args[0] == "verdicts":
		return verdicts(args[1], args[2], args[3:])
	}
	return fmt.Errorf("usage: gitops-check lua-tests DIR | verdicts LUA KUSTOMIZATION OBJECT...")
}

func readObject(path string) (*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return u, nil
}

// luaTests runs Argo CD's health_test.yaml format: each test names an input object and the health
// status and message the script must return for it.
func luaTests(dir string) error {
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		return err
	}
	var spec struct {
		Tests []struct {
			HealthStatus verdict `json:"healthStatus"`
			InputPath    string  `json:"inputPath"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(data, &spec); err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	for _, t := range spec.Tests {
		obj, err := readObject(filepath.Join(dir, t.InputPath))
		if err != nil {
			return err
		}
		got, err := argoHealth(string(script), obj.Object)
		if err != nil {
			return fmt.Errorf("%s: %w", t.InputPath, err)
		}
		if err := out.Encode(map[string]any{"inputPath": t.InputPath, "want": t.HealthStatus, "got": got}); err != nil {
			return err
		}
	}
	return nil
}

// argoHealth runs the script as Argo CD does: the object in the global `obj`, only the safe base
// libraries open, and the returned table's status and message are the verdict.
func argoHealth(script string, obj map[string]any) (verdict, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return verdict{}, err
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return verdict{}, fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	return verdict{Status: lua.LVAsString(table.RawGetString("status")), Message: lua.LVAsString(table.RawGetString("message"))}, nil
}

func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := l.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(l, e))
		}
		return t
	case []any:
		t := l.NewTable()
		for _, e := range v {
			t.Append(toLua(l, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	}
	return lua.LNil
}

// fluxCheck is one entry of a Kustomization's spec.healthCheckExprs.
type fluxCheck struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	InProgress string `json:"inProgress"`
	Failed     string `json:"failed"`
	Current    string `json:"current"`
}

func readFluxCheck(path, kind string) (fluxCheck, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fluxCheck{}, err
	}
	for _, doc := range strings.Split(string(data), "\n---") {
		var k struct {
			Kind string `json:"kind"`
			Spec struct {
				HealthCheckExprs []fluxCheck `json:"healthCheckExprs"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &k); err != nil {
			return fluxCheck{}, fmt.Errorf("%s: %w", path, err)
		}
		for _, c := range k.Spec.HealthCheckExprs {
			if k.Kind == "Kustomization" && c.Kind == kind {
				return c, nil
			}
		}
	}
	return fluxCheck{}, fmt.Errorf("%s: no Kustomization with a healthCheckExprs entry for %s", path, kind)
}

// fluxHealth applies the expressions as Flux's CEL status reader does (RFC 0009): a status whose
// observedGeneration differs from metadata.generation is InProgress, then the first of inProgress,
// failed, current that holds wins, and InProgress when none does. Flux parses the expressions
// without declaring variables (CRDs need not have the usual five top-level fields), so a missing
// field is an evaluation error, which leaves Flux waiting: reported here as Unknown.
func fluxHealth(c fluxCheck, obj map[string]any) verdict {
	og, hasOG, _ := unstructured.NestedInt64(obj, "status", "observedGeneration")
	gen, hasGen, _ := unstructured.NestedInt64(obj, "metadata", "generation")
	if hasOG && hasGen && og != gen {
		return verdict{Status: "InProgress", Message: "status.observedGeneration is not metadata.generation"}
	}
	env, err := cel.NewEnv(cel.HomogeneousAggregateLiterals(), cel.EagerlyValidateDeclarations(true), cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true), cel.OptionalTypes(), ext.Strings(), ext.Sets(), ext.Encoders())
	if err != nil {
		return verdict{Status: "Unknown", Message: err.Error()}
	}
	for _, e := range []struct{ expr, status string }{{c.InProgress, "InProgress"}, {c.Failed, "Failed"}, {c.Current, "Current"}} {
		if e.expr == "" {
			continue
		}
		ast, iss := env.Parse(e.expr)
		if iss.Err() != nil {
			return verdict{Status: "Unknown", Message: iss.Err().Error()}
		}
		prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			return verdict{Status: "Unknown", Message: err.Error()}
		}
		val, _, err := prg.Eval(obj)
		if err != nil {
			return verdict{Status: "Unknown", Message: fmt.Sprintf("%s: %v", e.status, err)}
		}
		b, ok := val.Value().(bool)
		if !ok {
			return verdict{Status: "Unknown", Message: fmt.Sprintf("%s: not a boolean: %v", e.status, val)}
		}
		if b {
			return verdict{Status: e.status, Message: e.expr}
		}
	}
	return verdict{Status: "InProgress", Message: "no expression holds"}
}

func verdicts(luaPath, kustomizationPath string, objects []string) error {
	script, err := os.ReadFile(luaPath)
	if err != nil {
		return err
	}
	check, err := readFluxCheck(kustomizationPath, "BatchRollout")
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	for _, path := range objects {
		obj, err := readObject(path)
		if err != nil {
			return err
		}
		res, err := status.Compute(obj)
		if err != nil {
			return fmt.Errorf("%s: kstatus: %w", path, err)
		}
		argo, err := argoHealth(string(script), obj.Object)
		if err != nil {
			return fmt.Errorf("%s: health.lua: %w", path, err)
		}
		line := map[string]any{
			"file":    path,
			"kstatus": verdict{Status: res.Status.String(), Message: res.Message},
			"argocd":  argo,
			"flux":    fluxHealth(check, obj.Object),
		}
		if err := out.Encode(line); err != nil {
			return err
		}
	}
	return nil
}
