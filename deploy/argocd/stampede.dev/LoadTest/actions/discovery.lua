-- The LoadTest's resource actions in Argo CD: abort, while the test has not finished.
local actions = {}
local phase = obj.status ~= nil and obj.status.phase or "Pending"
local finished = phase == "Succeeded" or phase == "Failed" or phase == "Aborted"
actions["abort"] = {disabled = finished or (obj.spec ~= nil and obj.spec.abort == true)}
return actions
