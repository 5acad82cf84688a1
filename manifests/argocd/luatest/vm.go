package main

// The Lua VM set up exactly as Argo CD sets it up for health checks and resource actions
// (argo-cd util/lua/lua.go, runLuaWithResourceActionParameters): gopher-lua with the standard
// libraries skipped, then only package, base, table and Argo CD's safe os (time, date) opened,
// `os` also preloaded for require("os"), a one-second deadline, an empty `actionParams` table and
// the object as the global `obj`. Argo CD opens every library only for its own built-in scripts;
// scripts installed through argocd-cm (ours) run without them unless useOpenLibs is set.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

func runLua(obj map[string]any, script string) (*lua.LState, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true}, lua.LString(pair.n)); err != nil {
			l.Close()
			return nil, err
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsLoader)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("actionParams", l.CreateTable(0, 0))
	l.SetGlobal("obj", decodeValue(l, obj))
	if err := l.DoString(script); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// decodeValue is Argo CD's conversion of the object into Lua values.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch converted := value.(type) {
	case bool:
		return lua.LBool(converted)
	case float64:
		return lua.LNumber(converted)
	case string:
		return lua.LString(converted)
	case json.Number:
		return lua.LString(converted)
	case int:
		return lua.LNumber(converted)
	case int32:
		return lua.LNumber(converted)
	case int64:
		return lua.LNumber(converted)
	case []any:
		arr := l.CreateTable(len(converted), 0)
		for _, item := range converted {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(converted))
		for key, item := range converted {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// returnedJSON is the script's return value as Argo CD reads it: a table, encoded to JSON.
func returnedJSON(l *lua.LState) ([]byte, error) {
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	return luajson.Encode(ret)
}

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

var validHealth = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true,
}

// executeHealth follows Argo CD's ExecuteHealthLua: an unknown status code becomes Unknown.
func executeHealth(obj map[string]any, script string) (healthStatus, error) {
	l, err := runLua(obj, script)
	if err != nil {
		return healthStatus{}, err
	}
	defer l.Close()
	if l.Get(-1).Type() == lua.LTNil {
		return healthStatus{}, nil
	}
	raw, err := returnedJSON(l)
	if err != nil {
		return healthStatus{}, err
	}
	var hs healthStatus
	if err := json.Unmarshal(raw, &hs); err != nil {
		return healthStatus{}, err
	}
	if !validHealth[hs.Status] {
		return healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return hs, nil
}

// executeAction follows Argo CD's ExecuteResourceAction for an old-style action (the object is
// returned and becomes a patch), including its repair of empty objects that Lua turned into arrays.
func executeAction(obj map[string]any, script string) (map[string]any, error) {
	l, err := runLua(deepCopy(obj), script)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	raw, err := returnedJSON(l)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("Lua output was not a valid json object: %w", err)
	}
	return cleanReturnedObj(out, obj), nil
}

type resourceAction struct {
	Name        string `json:"name"`
	Disabled    bool   `json:"disabled"`
	DisplayName string `json:"displayName,omitempty"`
}

// executeDiscovery follows Argo CD's ExecuteResourceActionDiscovery for one script.
func executeDiscovery(obj map[string]any, script string) ([]resourceAction, error) {
	l, err := runLua(obj, script)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	raw, err := returnedJSON(l)
	if err != nil {
		return nil, err
	}
	if string(raw) == "[]" {
		return nil, nil
	}
	var byName map[string]map[string]any
	if err := json.Unmarshal(raw, &byName); err != nil {
		return nil, fmt.Errorf("error unmarshaling action table: %w", err)
	}
	var actions []resourceAction
	for name, fields := range byName {
		a := resourceAction{Name: name}
		if d, ok := fields["disabled"].(bool); ok {
			a.Disabled = d
		}
		if n, ok := fields["displayName"].(string); ok {
			a.DisplayName = n
		}
		actions = append(actions, a)
	}
	return actions, nil
}

func cleanReturnedObj(newObj, obj map[string]any) map[string]any {
	for key := range obj {
		newValue, ok := newObj[key]
		if !ok {
			continue
		}
		switch nv := newValue.(type) {
		case map[string]any:
			if ov, ok := obj[key].(map[string]any); ok {
				newObj[key] = cleanReturnedObj(nv, ov)
			}
		case []any:
			switch ov := obj[key].(type) {
			case map[string]any:
				if len(nv) == 0 {
					newObj[key] = map[string]any{}
				}
			case []any:
				newObj[key] = cleanReturnedArray(nv, ov)
			}
		}
	}
	return newObj
}

func cleanReturnedArray(newArr, arr []any) []any {
	for i := range newArr {
		if i >= len(arr) {
			break
		}
		switch nv := newArr[i].(type) {
		case map[string]any:
			if ov, ok := arr[i].(map[string]any); ok {
				newArr[i] = cleanReturnedObj(nv, ov)
			}
		case []any:
			if ov, ok := arr[i].([]any); ok {
				newArr[i] = cleanReturnedArray(nv, ov)
			}
		}
	}
	return newArr
}

func deepCopy(obj map[string]any) map[string]any {
	raw, err := json.Marshal(obj)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		panic(err)
	}
	return out
}
