-- `lua.ViewList` and `lua.ViewListItem` (docs/viewdefs.md "Lists with lua.ViewList"): a list wrapper that turns a sequence
-- into items the frontend renders one by one, keeping each item (and its presenter) attached to the
-- same element while the sequence changes, so per-row UI state survives inserts and removals.
-- Loaded by the prelude on first use; receives the session and EMPTY.
local session, EMPTY = ...
local type, pairs, ipairs, pcall, rawget, rawequal, getmetatable, tostring =
  type, pairs, ipairs, pcall, rawget, rawequal, getmetatable, tostring
local table_remove = table.remove

local ViewListItem = session:prototype("lua.ViewListItem", {
  item = EMPTY, baseItem = EMPTY, index = 0, list = EMPTY,
})

-- Removes this item's element from the list's source.
function ViewListItem:remove()
  return self.list:removeAt(self.index)
end

local ViewList = session:prototype("lua.ViewList", {
  items = EMPTY, selectionIndex = -1, itemWrapper = "",
})

-- A sequence for sync purposes: a table whose keys, ignoring `_`-prefixed strings, are exactly 1..n.
local function is_sequence(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for k in pairs(t) do
    if type(k) == "number" then
      n = n + 1
    elseif not (type(k) == "string" and k:sub(1, 1) == "_") then
      return false
    end
  end
  return n == #t
end

local function destroy_presenter(li)
  local presenter = rawget(li, "item")
  if presenter ~= nil and not rawequal(presenter, rawget(li, "baseItem")) and type(presenter) == "table" then
    local destroy = presenter.destroy
    if type(destroy) == "function" then
      local ok, err = pcall(destroy, presenter)
      if not ok then session:log("warn", "presenter destroy failed: " .. tostring(err)) end
    end
  end
end

-- A new item for element `e`; its presenter comes from `itemWrapper` when that names a type.
function ViewList:_newItem(e, index)
  local li = session:create(ViewListItem, {baseItem = e, item = e, index = index, list = self})
  local name = self.itemWrapper
  if type(name) == "string" and name ~= "" then
    local P = session._lookupType(name)
    if type(P) == "table" and P.new ~= nil then
      local ok, presenter = pcall(P.new, P, li)
      if ok and presenter ~= nil then
        li.item = presenter
      elseif not ok then
        session:log("warn", "itemWrapper " .. name .. " failed: " .. tostring(presenter))
      end
    elseif P == nil then
      session:log("warn", "itemWrapper " .. name .. " is not a known type")
    end
  end
  return li
end

-- Sync by identity: an element keeps its item as long as it stays in the sequence. Keys are (element,
-- occurrence number), so repeated primitives map to items in order.
function ViewList:_sync(source)
  local old = self._keys or {}
  local keys, items, seen = {}, {}, {}
  if type(source) == "table" then
    for i, e in ipairs(source) do
      if e == e then -- NaN cannot be a key; it never matches an old item
        local n = (seen[e] or 0) + 1
        seen[e] = n
        local slots = old[e]
        local li = slots and slots[n]
        if li ~= nil then
          slots[n] = nil
          li.index = i - 1
        else
          li = self:_newItem(e, i - 1)
        end
        items[i] = li
        local mine = keys[e]
        if mine == nil then mine = {}; keys[e] = mine end
        mine[n] = li
      else
        items[i] = self:_newItem(e, i - 1)
      end
    end
  end
  for _, slots in pairs(old) do
    for _, li in pairs(slots) do destroy_presenter(li) end
  end
  self._keys, self.items, self._source = keys, items, source
  if self.selectionIndex >= #items then self.selectionIndex = -1 end
end

-- The wrapper constructor: reuses the variable's current list, re-syncs it from the raw value.
function ViewList:new(variable)
  local vl = variable:getWrapper()
  if vl == nil or getmetatable(vl) ~= ViewList then
    vl = session:create(ViewList, {items = {}, selectionIndex = -1, _keys = {}})
    variable:setProperty("fallbackNamespace:high", "list-item")
  end
  local wrapper = variable:getProperty("itemWrapper") or ""
  if wrapper ~= vl.itemWrapper then
    -- Different presenters: every item is rebuilt.
    for _, li in ipairs(vl.items) do destroy_presenter(li) end
    vl._keys, vl.items, vl.itemWrapper = {}, {}, wrapper
  end
  local source = variable:getValue()
  if source ~= nil and not is_sequence(source) then
    vl:_sync(nil)
    error("path-failure: a ViewList needs a sequence, got a " .. type(source), 0)
  end
  vl:_sync(source)
  return vl
end

-- Removes element `index` (0-based) from the source sequence.
function ViewList:removeAt(index)
  local source = self._source
  if type(source) == "table" and type(index) == "number" and index >= 0 and index < #source then
    table_remove(source, index + 1)
    self:_sync(source)
  end
end

-- Finds the item showing `element` (or its presenter) and removes it.
function ViewList:remove(element)
  for i, li in ipairs(self.items) do
    if rawequal(li.baseItem, element) or rawequal(li.item, element) or rawequal(li, element) then
      return self:removeAt(i - 1)
    end
  end
end

-- Destroying the list destroys every presenter.
function ViewList:destroy()
  for _, li in ipairs(self.items) do destroy_presenter(li) end
  self._keys, self.items = {}, {}
end
