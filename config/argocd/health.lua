-- Argo CD health check for offerfeed.dev/OfferFeedPolicy (argocd-cm key
-- resource.customizations.health.offerfeed.dev_OfferFeedPolicy; README.md in this directory).
-- Healthy: Ready=True at the current generation. Degraded: Stalled=True, someone must act
-- (a conflict, an invalid policy, a foreign offerfeed-gateway ConfigMap). Progressing:
-- anything else, such as a policy the manager has not reconciled yet.
local hs = { status = "Progressing", message = "Waiting for the offerfeed manager to reconcile the policy" }
local generation = obj.metadata.generation
-- The API server fills in observedGeneration 0 until the manager first writes the status.
if obj.status == nil or obj.status.observedGeneration == nil or obj.status.observedGeneration == 0 then
  return hs
end
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the offerfeed manager to observe generation " .. generation
  return hs
end
local ready = nil
local stalled = nil
for _, c in ipairs(obj.status.conditions or {}) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Stalled" then
    stalled = c
  end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end
if ready == nil or (generation ~= nil and ready.observedGeneration ~= generation) then
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
return hs
