-- Argo CD health of a modeldeploy.dev ModelDeployment, read from the status the operator writes.
-- Runs in Argo CD's Lua VM (gopher-lua, Lua 5.1; only the base, table and a safe os library are
-- loaded, so no string library: plain concatenation only).
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function message_of(status, kind, fallback)
  local c = condition(status, kind)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local rollout = status.rollout or {}
local phase = status.phase

if phase == "Healthy" then
  hs.status = "Healthy"
  hs.message = message_of(status, "Progressing", "")
elseif phase == "Progressing" or phase == "Pending" then
  hs.status = "Progressing"
  local where = message_of(status, "Progressing", phase)
  if status.canaryRevision ~= nil then
    hs.message = "Canary " .. status.canaryRevision .. ": " .. where
  else
    hs.message = where
  end
elseif phase == "Paused" then
  hs.status = "Suspended"
  hs.message = rollout.pauseReason or message_of(status, "Progressing", "Rollout paused: waiting for promote")
elseif phase == "RolledBack" then
  hs.status = "Degraded"
  local why = rollout.abortReason or message_of(status, "Degraded", "the rollout was aborted")
  hs.message = "Rolled back revision " .. (rollout.revision or "?") .. ": " .. why
elseif phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = message_of(status, "Degraded", message_of(status, "Progressing", "Degraded"))
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. phase
end
return hs
