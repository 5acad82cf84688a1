-- The manual commands of `kubectl modeldeploy`, offered in Argo CD's UI while they can act.
local actions = {}
local status = obj.status or {}
local rollout = status.rollout
local aborted = rollout ~= nil and rollout.aborted == true
local in_flight = rollout ~= nil and not aborted and status.canaryRevision ~= nil
local paused = in_flight and rollout.paused == true

actions["promote"] = {["disabled"] = not in_flight, ["displayName"] = "Promote (next step)"}
actions["promote-full"] = {["disabled"] = not in_flight, ["displayName"] = "Promote full (skip analysis)"}
actions["pause"] = {["disabled"] = not in_flight or paused}
actions["resume"] = {["disabled"] = not paused}
actions["abort"] = {["disabled"] = not in_flight}
actions["retry"] = {["disabled"] = not aborted}
return actions
