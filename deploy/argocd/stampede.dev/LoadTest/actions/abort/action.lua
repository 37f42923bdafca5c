-- Sets spec.abort: the operator stops the agents and ends the test as Aborted.
if obj.spec == nil then
  obj.spec = {}
end
obj.spec.abort = true
return obj
