-- The sandbox's replacements for `load` and `setmetatable` (src/lua/sandbox.rs installs them; compiled
-- once per process, like the prelude).
local raw_load, raw_setmetatable, rawget, type, error = ...

-- load: text chunks only.
local function load(chunk, name, mode, env)
  if type(chunk) ~= 'string' and type(chunk) ~= 'function' then
    return nil, 'load expects a string or a function'
  end
  if env ~= nil then return raw_load(chunk, name, 't', env) end
  return raw_load(chunk, name, 't')
end

-- setmetatable: no `__gc`. Finalizers run with hooks off (no budget or clock can stop one) at times
-- the session does not choose, including when its state is closed; Lua marks an object for
-- finalization only if `__gc` is present when the metatable is set, so checking here is enough.
local function setmetatable(t, mt)
  if type(mt) == 'table' and rawget(mt, '__gc') ~= nil then
    error('__gc finalizers are not allowed', 2)
  end
  return raw_setmetatable(t, mt)
end

return load, setmetatable
