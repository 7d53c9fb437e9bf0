-- Argo CD health of a BatchRollout, from the conditions its operator writes (Ready, Progressing,
-- Stalled, each with observedGeneration). Every verdict keeps the condition's own message.
local hs = {}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local progressing = condition("Progressing")
local function progressMessage(fallback)
  if progressing ~= nil and progressing.message ~= nil and progressing.message ~= "" then
    return progressing.message
  end
  return fallback
end

-- Deleting: the operator deletes the pods in waves before it lets the object go.
if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "being deleted: " .. progressMessage("waiting for the operator to delete the pods")
  return hs
end

-- Nothing the operator wrote describes this spec yet: a new object, or a spec it has not read.
local generation = obj.metadata.generation
if obj.status == nil or obj.status.conditions == nil or obj.status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = tostring(stalled.reason) .. ": " .. tostring(stalled.message or "")
  return hs
end

local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end

-- failurePolicy.action Continue: every pod was created and the failed ones are kept, never
-- replaced, so the rollout is as done as it will get. Healthy, with the failed count.
if progressing ~= nil and progressing.status == "False" and progressing.reason == "Complete" then
  hs.status = "Healthy"
  hs.message = progressing.message
  return hs
end

if obj.spec.paused == true or (progressing ~= nil and progressing.reason == "Paused") then
  hs.status = "Suspended"
  hs.message = progressMessage("paused")
  return hs
end

hs.status = "Progressing"
hs.message = progressMessage("waiting for the rollout")
return hs
