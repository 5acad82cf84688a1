// Command luatest runs a resource customization (health.lua, actions/discovery.lua and
// actions/*/action.lua, laid out as in Argo CD's resource_customizations/<group>/<Kind>/) in the
// Lua VM Argo CD uses, against the cases of health_test.yaml and actions/action_test.yaml (Argo
// CD's formats), and prints the argocd-cm entries that install it.
//
//	luatest check DIR       one line per case; exit 1 when any case fails
//	luatest configmap DIR   the argocd-cm ConfigMap (YAML) carrying the scripts
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: luatest check|configmap DIR")
		os.Exit(2)
	}
	dir := os.Args[2]
	switch os.Args[1] {
	case "check":
		failed, err := check(dir, os.Stdout)
		if err != nil {
			fmt.Fprintln(os.Stderr, "luatest:", err)
			os.Exit(2)
		}
		if failed > 0 {
			fmt.Printf("FAILED: %d case(s)\n", failed)
			os.Exit(1)
		}
		fmt.Println("ok")
	case "configmap":
		out, err := configMap(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "luatest:", err)
			os.Exit(2)
		}
		os.Stdout.Write(out)
	default:
		fmt.Fprintln(os.Stderr, "usage: luatest check|configmap DIR")
		os.Exit(2)
	}
}
