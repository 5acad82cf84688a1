// Command luatest runs a resource customization (health.lua, actions/discovery.lua and
// actions/*/action.lua, laid out as in Argo CD's resource_customizations/<group>/<Kind>/) in the
// Lua VM Argo CD uses, against the cases of health_test.yaml and actions/action_test.yaml (Argo
// CD's formats), and prints the argocd-cm entries that install it.
//
//	luatest check DIR             one line per case; exit 1 when any case fails
//	luatest configmap DIR         the argocd-cm ConfigMap (YAML) carrying the scripts
//	luatest health DIR            health of the object (JSON on stdin), as JSON
//	luatest discovery DIR         the actions offered for the object (JSON on stdin), as JSON
//	luatest action DIR NAME       the object (JSON on stdin) after action NAME, as JSON: what Argo
//	                              CD turns into a merge patch
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

const usage = "usage: luatest check|configmap|health|discovery DIR, or luatest action DIR NAME"

func main() {
	if len(os.Args) < 3 {
		fail(2, usage)
	}
	dir := os.Args[2]
	switch {
	case os.Args[1] == "check" && len(os.Args) == 3:
		failed, err := check(dir, os.Stdout)
		if err != nil {
			fail(2, err.Error())
		}
		if failed > 0 {
			fmt.Printf("FAILED: %d case(s)\n", failed)
			os.Exit(1)
		}
		fmt.Println("ok")
	case os.Args[1] == "configmap" && len(os.Args) == 3:
		out, err := configMap(dir)
		if err != nil {
			fail(2, err.Error())
		}
		os.Stdout.Write(out)
	case os.Args[1] == "health" && len(os.Args) == 3:
		emit(run(dir, "health.lua", func(obj map[string]any, script string) (any, error) {
			return executeHealth(obj, script)
		}))
	case os.Args[1] == "discovery" && len(os.Args) == 3:
		emit(run(dir, filepath.Join("actions", "discovery.lua"), func(obj map[string]any, script string) (any, error) {
			return executeDiscovery(obj, script)
		}))
	case os.Args[1] == "action" && len(os.Args) == 4:
		emit(run(dir, filepath.Join("actions", os.Args[3], "action.lua"), func(obj map[string]any, script string) (any, error) {
			return executeAction(obj, script)
		}))
	default:
		fail(2, usage)
	}
}

func run(dir, script string, execute func(map[string]any, string) (any, error)) (any, error) {
	text, err := readScript(filepath.Join(dir, script))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("stdin is not a JSON object: %w", err)
	}
	return execute(obj, text)
}

func emit(result any, err error) {
	if err != nil {
		fail(1, err.Error())
	}
	out, err := json.Marshal(result)
	if err != nil {
		fail(1, err.Error())
	}
	fmt.Println(string(out))
}

func fail(code int, message string) {
	fmt.Fprintln(os.Stderr, "luatest:", message)
	os.Exit(code)
}
