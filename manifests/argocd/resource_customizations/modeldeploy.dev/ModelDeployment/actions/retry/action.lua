-- retry: restart an aborted (rolled back) rollout from its first step.
-- Sets the same annotation as `kubectl modeldeploy retry`: modeldeploy.dev/command: retry/<nonce>.
-- The operator acts on a value once (status.rollout.lastCommand), so the nonce is the time in
-- seconds, made distinct from the value already there and from the one last consumed.
local os = require("os")
local key = "modeldeploy.dev/command"
local base = "retry/" .. os.time()
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local current = obj.metadata.annotations[key]
local consumed = nil
if obj.status ~= nil and obj.status.rollout ~= nil then
  consumed = obj.status.rollout.lastCommand
end
local value = base
local n = 0
while value == current or value == consumed do
  n = n + 1
  value = base .. "-" .. n
end
obj.metadata.annotations[key] = value
return obj
