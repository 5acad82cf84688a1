package main

import (
	"os"
	"path/filepath"
	"sort"

	"sigs.k8s.io/yaml"
)

const header = "# Argo CD resource customizations for modeldeploy.dev/ModelDeployment, to merge into argocd-cm.\n" +
	"# Generated from resource_customizations/ by `luatest configmap` (see docs/gitops.md); do not edit.\n"

type actionDefinition struct {
	Name      string `json:"name"`
	ActionLua string `json:"action.lua"`
}

type actions struct {
	DiscoveryLua string             `json:"discovery.lua"`
	Definitions  []actionDefinition `json:"definitions"`
}

// configMap renders the argocd-cm keys Argo CD reads for a group/Kind: resource.customizations.
// health.<group>_<Kind> (the health.lua text) and resource.customizations.actions.<group>_<Kind>
// (discovery.lua plus one definition per action folder).
func configMap(dir string) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	kind := filepath.Base(abs)
	group := filepath.Base(filepath.Dir(abs))
	health, err := readScript(filepath.Join(dir, "health.lua"))
	if err != nil {
		return nil, err
	}
	discovery, err := readScript(filepath.Join(dir, "actions", "discovery.lua"))
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(dir, "actions"))
	if err != nil {
		return nil, err
	}
	acts := actions{DiscoveryLua: discovery}
	for _, e := range entries {
		script, err := readScript(filepath.Join(dir, "actions", e.Name(), "action.lua"))
		if err != nil {
			continue // not an action folder (testdata, files)
		}
		acts.Definitions = append(acts.Definitions, actionDefinition{Name: e.Name(), ActionLua: script})
	}
	sort.Slice(acts.Definitions, func(i, j int) bool { return acts.Definitions[i].Name < acts.Definitions[j].Name })
	actionsYAML, err := yaml.Marshal(acts)
	if err != nil {
		return nil, err
	}
	cm := map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata": map[string]any{
			"name":      "argocd-cm",
			"namespace": "argocd",
			"labels":    map[string]string{"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
		},
		"data": map[string]string{
			"resource.customizations.health." + group + "_" + kind:  health,
			"resource.customizations.actions." + group + "_" + kind: string(actionsYAML),
		},
	}
	body, err := yaml.Marshal(cm)
	if err != nil {
		return nil, err
	}
	return append([]byte(header), body...), nil
}
