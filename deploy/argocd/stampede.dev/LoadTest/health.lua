-- Argo CD health of a Stampede LoadTest (resource.customizations.health.stampede.dev_LoadTest).
--   Pending, Starting, Running, or an edit the operator has not seen yet -> Progressing
--   Succeeded                                                           -> Healthy
--   Failed                                                              -> Degraded
--   Aborted (spec.abort, or stopped by hand)                            -> Suspended
local hs = {status = "Progressing", message = "waiting for the operator"}
if obj.status == nil then
  return hs
end
local status = obj.status
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "the operator has not seen generation " .. generation .. " yet"
  return hs
end
local phase = status.phase or "Pending"
local detail = status.message or ""
if status.reason ~= nil and status.reason ~= "" then
  detail = status.reason .. ": " .. detail
end
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = detail
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = detail
elseif phase == "Aborted" then
  hs.status = "Suspended"
  hs.message = detail
else
  hs.message = phase .. (detail ~= "" and (" - " .. detail) or "")
end
return hs
