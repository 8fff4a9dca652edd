-- The parts of the session API best written in Lua (docs/lua-api.md "Prototypes", docs/viewdefs.md "Other wrappers"): prototypes,
-- instances, the mutation queue that runs after every code load, and the per-session type table.
-- Runs once per session state, after the Rust-side `session` functions exist. Its argument loads the
-- ViewList library (lua/viewlist.lua) on first use; it returns the gateway's internal hooks.
local load_viewlist = ...
local session, ui, EMPTY = session, ui, EMPTY
local rawget, rawset, setmetatable, getmetatable = rawget, rawset, setmetatable, getmetatable
local pairs, ipairs, type, pcall, next = pairs, ipairs, type, pcall, next

local prototypes = {}                                -- name -> prototype
local snapshots = {}                                 -- name -> {key = init value}
local instances = setmetatable({}, {__mode = "k"})   -- instance -> prototype (direct instances only)
local pending = {}                                   -- queued {proto, removedKeys}
local types = {}                                     -- ui.registerWrapper / registerPresenter

-- Both `session:m(...)` and `session.m(...)` work: a first argument equal to `session` is dropped.
local function method(f)
  return function(first, ...)
    if first == session then return f(...) end
    return f(first, ...)
  end
end

local function same(a, b, seen)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  if getmetatable(a) ~= nil or getmetatable(b) ~= nil then return false end
  seen = seen or {}
  if seen[a] == b then return true end
  seen[a] = b
  for k, v in pairs(a) do
    if not same(v, rawget(b, k), seen) then return false end
  end
  for k in pairs(b) do
    if rawget(a, k) == nil then return false end
  end
  return true
end

local reserved = {type = true, __index = true, new = true}

local function snapshot_of(init)
  local snap = {}
  for k, v in pairs(init) do
    if not reserved[k] then snap[k] = v end
  end
  return snap
end

local function create(proto, inst)
  inst = inst or {}
  setmetatable(inst, proto)
  instances[inst] = proto
  return inst
end

session.create = method(create)

session.prototype = method(function(name, init, base)
  if type(name) ~= "string" or name == "" then
    error("bad-message: prototype needs a name", 2)
  end
  local proto = prototypes[name]
  if proto == nil then
    proto = init or {}
    local snap = snapshot_of(proto)
    for k, v in pairs(snap) do
      if v == EMPTY then proto[k] = nil end
    end
    rawset(proto, "type", name)
    rawset(proto, "__index", proto)
    setmetatable(proto, base or prototypes["Object"])
    if base == nil and rawget(proto, "new") == nil then
      rawset(proto, "new", function(self, inst) return create(self, inst) end)
    end
    prototypes[name] = proto
    snapshots[name] = snap
    return proto
  end
  if init == nil then return proto end
  local old, snap = snapshots[name], snapshot_of(init)
  local changed, removed = false, {}
  for k, v in pairs(snap) do
    if old[k] == nil or not same(old[k], v) then changed = true end
  end
  for k in pairs(old) do
    if snap[k] == nil then
      changed = true
      removed[#removed + 1] = k
    end
  end
  if changed then
    for k, v in pairs(snap) do
      if v == EMPTY then rawset(proto, k, nil) else rawset(proto, k, v) end
    end
    for _, k in ipairs(removed) do rawset(proto, k, nil) end
    snapshots[name] = snap
    pending[#pending + 1] = {proto = proto, removed = removed}
  end
  if base ~= nil and getmetatable(proto) ~= base then setmetatable(proto, base) end
  return proto
end)

session.removePrototype = method(function(name, children)
  prototypes[name], snapshots[name] = nil, nil
  if children then
    local prefix = name .. "."
    for k in pairs(prototypes) do
      if k:sub(1, #prefix) == prefix then prototypes[k], snapshots[k] = nil, nil end
    end
  end
end)

-- Called by the gateway after every code load (main.lua, require, dofile, reload, `lua` property).
function session._runMutations()
  if next(pending) == nil then return end
  local queue = pending
  pending = {}
  for _, item in ipairs(queue) do
    for inst, proto in pairs(instances) do
      if proto == item.proto then
        local mutate = inst.mutate
        if type(mutate) == "function" then
          local ok, err = pcall(mutate, inst)
          if not ok then session:log("warn", "mutate failed: " .. tostring(err)) end
        end
        for _, k in ipairs(item.removed) do rawset(inst, k, nil) end
      end
    end
  end
end

-- The ViewList library is compiled on first use, so an app that never shows a list does not pay for it.
local viewlist_loaded = false
local function ensure_viewlist()
  if not viewlist_loaded then
    viewlist_loaded = true
    load_viewlist(session, EMPTY)
  end
end

-- `lua.ViewList` and `lua.ViewListItem` as globals, loaded when first touched.
lua = setmetatable({}, {__index = function(t, k)
  if k == "ViewList" or k == "ViewListItem" then
    ensure_viewlist()
    local p = prototypes["lua." .. k]
    rawset(t, k, p)
    return p
  end
end})

-- Type lookup for `wrapper`, `itemWrapper` and `create`: registered types, prototypes, dotted globals.
function session._lookupType(name)
  if type(name) ~= "string" or name == "" then return nil end
  local t = types[name] or prototypes[name]
  if t ~= nil then return t end
  if name == "lua.ViewList" or name == "lua.ViewListItem" then
    ensure_viewlist()
    return prototypes[name]
  end
  local v = _G
  for part in name:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end

ui.registerWrapper = function(name, t) types[name] = t end
ui.registerPresenter = function(name, t) types[name] = t end

-- Hooks the gateway calls; kept out of reach of app code (returned, not stored in a global).
local internals = {}

-- A variable's wrapper (docs/variables.md "Wrappers", docs/viewdefs.md "Other wrappers"). Returns "none", "reuse", "new", w or
-- "transform", v. Errors carry a protocol code prefix the gateway maps back to the code.
function internals.wrap(var, name, raw)
  local item_proto = prototypes["lua.ViewListItem"]
  if item_proto ~= nil and type(raw) == "table" and getmetatable(raw) == item_proto then
    local list = rawget(raw, "list")
    if type(list) == "table" and list.itemWrapper == name then return "none" end
  end
  local T = session._lookupType(name)
  if T == nil then error("not-found: unknown wrapper type " .. name, 0) end
  if type(T) ~= "table" then error("not-found: wrapper " .. name .. " is not a table", 0) end
  if T.new ~= nil then
    local existing = var:getWrapper()
    local w = T:new(var)
    if w == nil then return "none" end
    if rawequal(w, existing) then return "reuse" end
    return "new", w
  end
  if T.computeValue ~= nil then return "transform", T:computeValue(var) end
  error("not-found: wrapper " .. name .. " has neither new nor computeValue", 0)
end

-- The `destroy` of a replaced or orphaned wrapper, if it has one.
function internals.destroy_wrapper(w)
  if type(w) == "table" and type(w.destroy) == "function" then w:destroy() end
end

-- `create=T`: an instance of T for a nil path.
function internals.instantiate(name)
  local T = session._lookupType(name)
  if type(T) ~= "table" then error("not-found: unknown type " .. tostring(name), 0) end
  if T.new ~= nil then return T:new() end
  return create(T, {})
end

-- Whether a prototype of `obj` declares `key` (in its init table, possibly as EMPTY: nil on purpose).
-- The resolver asks before it calls a nil read of a name close to another one a typo (development
-- mode only).
function internals.declares(obj, key)
  local p = getmetatable(obj)
  for _ = 1, 16 do
    if type(p) ~= "table" then return false end
    local name = rawget(p, "type")
    local snap = name and snapshots[name]
    if snap and snap[key] ~= nil then return true end
    p = getmetatable(p)
  end
  return false
end

internals.run_mutations = session._runMutations

return internals
