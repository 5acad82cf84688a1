package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"time"

	"sigs.k8s.io/yaml"
)

// CommandAnnotation is the annotation `kubectl modeldeploy VERB` sets (modeldeploy/cli/commands.py).
const CommandAnnotation = "modeldeploy.dev/command"

type healthTests struct {
	Tests []struct {
		InputPath    string       `json:"inputPath"`
		HealthStatus healthStatus `json:"healthStatus"`
	} `json:"tests"`
}

type actionTests struct {
	DiscoveryTests []struct {
		InputPath string           `json:"inputPath"`
		Result    []resourceAction `json:"result"`
	} `json:"discoveryTests"`
	ActionTests []struct {
		Action             string `json:"action"`
		InputPath          string `json:"inputPath"`
		ExpectedOutputPath string `json:"expectedOutputPath"`
	} `json:"actionTests"`
}

func readYAML(path string, into any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readObject(path string) (map[string]any, error) {
	var obj map[string]any
	return obj, readYAML(path, &obj)
}

func readScript(path string) (string, error) {
	raw, err := os.ReadFile(path)
	return string(raw), err
}

type report struct {
	out    io.Writer
	failed int
}

func (r *report) result(name string, err error) {
	if err != nil {
		r.failed++
		fmt.Fprintf(r.out, "FAIL %s: %v\n", name, err)
		return
	}
	fmt.Fprintf(r.out, "PASS %s\n", name)
}

// check runs every case; an error means the layout itself is broken (a file missing).
func check(dir string, out io.Writer) (int, error) {
	r := &report{out: out}
	if err := checkHealth(dir, r); err != nil {
		return 0, err
	}
	if err := checkActions(filepath.Join(dir, "actions"), r); err != nil {
		return 0, err
	}
	return r.failed, nil
}

func checkHealth(dir string, r *report) error {
	script, err := readScript(filepath.Join(dir, "health.lua"))
	if err != nil {
		return err
	}
	var tests healthTests
	if err := readYAML(filepath.Join(dir, "health_test.yaml"), &tests); err != nil {
		return err
	}
	if len(tests.Tests) == 0 {
		return fmt.Errorf("%s/health_test.yaml has no tests", dir)
	}
	for _, tc := range tests.Tests {
		obj, err := readObject(filepath.Join(dir, tc.InputPath))
		if err != nil {
			return err
		}
		got, err := executeHealth(obj, script)
		if err == nil && got != tc.HealthStatus {
			err = fmt.Errorf("got %+v, want %+v", got, tc.HealthStatus)
		}
		r.result("health "+tc.InputPath, err)
	}
	return nil
}

func checkActions(dir string, r *report) error {
	discovery, err := readScript(filepath.Join(dir, "discovery.lua"))
	if err != nil {
		return err
	}
	var tests actionTests
	if err := readYAML(filepath.Join(dir, "action_test.yaml"), &tests); err != nil {
		return err
	}
	if len(tests.DiscoveryTests) == 0 || len(tests.ActionTests) == 0 {
		return fmt.Errorf("%s/action_test.yaml needs discoveryTests and actionTests", dir)
	}
	for _, tc := range tests.DiscoveryTests {
		obj, err := readObject(filepath.Join(dir, tc.InputPath))
		if err != nil {
			return err
		}
		got, err := executeDiscovery(obj, discovery)
		if err == nil && !sameActions(got, tc.Result) {
			err = fmt.Errorf("got %+v, want %+v", sorted(got), sorted(tc.Result))
		}
		r.result("discovery "+tc.InputPath, err)
	}
	tested := map[string]bool{}
	for _, tc := range tests.ActionTests {
		tested[tc.Action] = true
		script, err := readScript(filepath.Join(dir, tc.Action, "action.lua"))
		if err != nil {
			return err
		}
		input, err := readObject(filepath.Join(dir, tc.InputPath))
		if err != nil {
			return err
		}
		want, err := readObject(filepath.Join(dir, tc.ExpectedOutputPath))
		if err != nil {
			return err
		}
		name := "action " + tc.Action + " " + tc.InputPath
		r.result(name, checkAction(tc.Action, script, input, want))
		r.result(name+" (nonce distinct from the current and the consumed command)",
			checkFreshNonce(tc.Action, script, input))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "action.lua")); err == nil && !tested[e.Name()] {
			r.result("action "+e.Name(), fmt.Errorf("no case in action_test.yaml"))
		}
	}
	return nil
}

// checkAction runs the action and compares the object with the expected one, after checking that
// the command's nonce is the current Unix time (os.time) and replacing it by the expected nonce.
func checkAction(verb, script string, input, want map[string]any) error {
	before := time.Now().Unix()
	got, err := executeAction(input, script)
	if err != nil {
		return err
	}
	after := time.Now().Unix()
	value := annotation(got)
	m := nonceValue.FindStringSubmatch(value)
	if m == nil || m[1] != verb {
		return fmt.Errorf("%s = %q, want %s/<unix seconds>", CommandAnnotation, value, verb)
	}
	if seconds, _ := strconv.ParseInt(m[2], 10, 64); seconds < before || seconds > after {
		return fmt.Errorf("%s = %q: nonce is not the current Unix time (%d..%d)", CommandAnnotation, value, before, after)
	}
	// the expected file holds some earlier time: it must be the same command, then the times are
	// made equal before the whole objects are compared
	expected := nonceValue.FindStringSubmatch(annotation(want))
	if expected == nil || expected[1] != verb {
		return fmt.Errorf("%s = %q, but the expected output has %q", CommandAnnotation, value, annotation(want))
	}
	setAnnotation(got, annotation(want))
	if !reflect.DeepEqual(normalize(got), normalize(want)) {
		return fmt.Errorf("object differs from the expected output:\n%s", diff(normalize(got), normalize(want), ""))
	}
	return nil
}

// checkFreshNonce: with the annotation already at verb/<now> and status.rollout.lastCommand at
// verb/<now>-1 (a second click within the same second), the action must write yet another value,
// or the operator would treat the click as already done.
func checkFreshNonce(verb, script string, input map[string]any) error {
	for attempt := 0; attempt < 3; attempt++ {
		now := time.Now().Unix()
		obj := deepCopy(input)
		current := fmt.Sprintf("%s/%d", verb, now)
		consumed := current + "-1"
		setAnnotation(obj, current)
		status, _ := obj["status"].(map[string]any)
		if status == nil {
			status = map[string]any{}
			obj["status"] = status
		}
		rollout, _ := status["rollout"].(map[string]any)
		if rollout == nil {
			rollout = map[string]any{}
			status["rollout"] = rollout
		}
		rollout["lastCommand"] = consumed
		got, err := executeAction(obj, script)
		if err != nil {
			return err
		}
		if time.Now().Unix() != now {
			continue // the second ticked over during the run: the case did not happen, try again
		}
		if value := annotation(got); value != current+"-2" {
			return fmt.Errorf("%s = %q, want %q", CommandAnnotation, value, current+"-2")
		}
		return nil
	}
	return fmt.Errorf("the clock ticked over on every attempt")
}

var nonceValue = regexp.MustCompile(`^([a-z-]+)/([0-9]+)(-[0-9]+)?$`)

func annotation(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	annotations, _ := meta["annotations"].(map[string]any)
	value, _ := annotations[CommandAnnotation].(string)
	return value
}

func setAnnotation(obj map[string]any, value string) {
	meta := obj["metadata"].(map[string]any)
	annotations, _ := meta["annotations"].(map[string]any)
	if annotations == nil {
		annotations = map[string]any{}
		meta["annotations"] = annotations
	}
	annotations[CommandAnnotation] = value
}

// normalize gives both sides the same number types (YAML and Lua disagree on ints and floats).
func normalize(obj map[string]any) map[string]any {
	return deepCopy(obj)
}

func diff(got, want any, path string) string {
	gm, gok := got.(map[string]any)
	wm, wok := want.(map[string]any)
	if gok && wok {
		keys := map[string]bool{}
		for k := range gm {
			keys[k] = true
		}
		for k := range wm {
			keys[k] = true
		}
		names := make([]string, 0, len(keys))
		for k := range keys {
			names = append(names, k)
		}
		sort.Strings(names)
		out := ""
		for _, k := range names {
			out += diff(gm[k], wm[k], path+"."+k)
		}
		return out
	}
	if reflect.DeepEqual(got, want) {
		return ""
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	return fmt.Sprintf("  %s: got %s, want %s\n", path, g, w)
}

func sameActions(got, want []resourceAction) bool {
	return reflect.DeepEqual(sorted(got), sorted(want))
}

func sorted(actions []resourceAction) []resourceAction {
	out := append([]resourceAction(nil), actions...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
