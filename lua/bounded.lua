-- Bounded library functions (docs/lua-limits.md, src/lua/bounded.rs).
--
-- C library functions run without the instruction hook, so one call could loop for as long as its
-- input asks. Each function below either is the Rust pattern matcher (which counts its own steps) or
-- wraps the stock function and charges its work, in steps, to the phase's instruction budget: a step
-- is one element moved or visited, or 16 bytes copied or scanned. Small amounts are gathered in
-- `pending` and charged 64 Ki steps at a time (what the wrapper's own instructions already pay for);
-- the stock function still does the work, so results and error messages stay Lua's.
--
-- Every session loads this, so the wrappers are built by a few shared factories: a closure costs
-- the Lua heap far less than a function prototype.
local impl, charge = ...

local select, type, rawequal, tostring = select, type, rawequal, tostring
local mathtype, log, ceil = math.type, math.log, math.ceil
local string, table, utf8, os = string, table, utf8, os

-- One step per this many bytes produced or scanned.
local BYTES = 16
-- Steps gathered before the Rust side is called.
local FLUSH = 65536
local pending = 0

local function paid(steps)
  pending = pending + steps
  if pending >= FLUSH then
    local p = pending
    pending = 0
    charge(p)
  end
end

-- One step per value.
local function counted(...)
  paid(select('#', ...))
  return ...
end

-- One step per 16 bytes of a result.
local function produced(r)
  paid(#r // BYTES)
  return r
end

-- Length of a string-or-number argument (what the C side converts), 0 for anything else.
local function len(v)
  local t = type(v)
  if t == 'string' then return #v end
  if t == 'number' then return #tostring(v) end
  return 0
end

-- Factories.
local function producing(f) return function(...) return produced(f(...)) end end
local function counting(f) return function(...) return counted(f(...)) end end
local function per_arg(f)
  return function(...)
    paid(select('#', ...))
    return f(...)
  end
end
-- Charges `weight` steps per 16 bytes of the first argument (a format, or a string scanned whole).
local function by_first(f, weight)
  return function(a, ...)
    paid(len(a) * weight // BYTES)
    return f(a, ...)
  end
end

---------------------------------------------------------------------------------------------------
-- Patterns: the step-counted matcher (C functions from bounded.rs).

local stock_gmatch = string.gmatch
string.find = impl.find
string.match = impl.match
string.gsub = impl.gsub
string.gmatch = impl.gmatch
if rawequal(string.gfind, stock_gmatch) then string.gfind = string.gmatch end

---------------------------------------------------------------------------------------------------
-- Strings: linear in what they produce.

local rep = string.rep
-- Charged after the copy, by copies and bytes (a result too big for the heap fails at once, before
-- copying). Only copies of nothing are charged first: rep("", 1e15) loops 1e15 times, allocating
-- nothing.
string.rep = function(s, n, sep)
  if not mathtype(n) or n < 2 then return rep(s, n, sep) end
  if len(s) + len(sep) == 0 then
    paid(n)
    return rep(s, n, sep)
  end
  local r = rep(s, n, sep)
  paid(n + #r // BYTES)
  return r
end
string.format = producing(string.format)
string.upper = producing(string.upper)
string.lower = producing(string.lower)
string.reverse = producing(string.reverse)
string.sub = producing(string.sub)
string.byte = counting(string.byte)
string.char = per_arg(string.char)
string.pack = by_first(producing(string.pack), 1)
string.unpack = by_first(counting(string.unpack), 1)
string.packsize = by_first(string.packsize, 1)

---------------------------------------------------------------------------------------------------
-- Tables: linear in the elements they visit.

local move, concat, sort, insert, remove, unpack_t = table.move, table.concat, table.sort, table.insert,
  table.remove, table.unpack

-- Charged before moving: table.move({}, 1, 3e8, 1, {}) never allocates, so nothing else stops it.
table.move = function(a1, f, e, t, a2)
  if mathtype(f) and mathtype(e) and e >= f then paid(e - f + 1) end
  return move(a1, f, e, t, a2)
end

-- Charged after the fact (a range over missing elements fails at its first one): one step per
-- element and per 16 bytes of the result.
table.concat = function(list, sep, i, j)
  local r = concat(list, sep, i, j)
  local n = (j or #list) - (i or 1) + 1
  paid((n > 0 and n or 0) + #r // BYTES)
  return r
end

-- n·log2(n) comparisons, charged before sorting; a comparator is Lua and pays its own way.
table.sort = function(t, comp)
  if type(t) == 'table' then
    local n = #t
    if mathtype(n) and n > 1 then paid(n * ceil(log(n, 2))) end
  end
  return sort(t, comp)
end

-- insert and remove shift the elements after `pos`.
table.insert = function(t, ...)
  if select('#', ...) == 2 and type(t) == 'table' then
    local pos, n = ..., #t
    if mathtype(pos) and mathtype(n) and n >= pos then paid(n - pos + 1) end
  end
  return insert(t, ...)
end
table.remove = function(t, ...)
  if select('#', ...) >= 1 and type(t) == 'table' then
    local pos, n = ..., #t
    if mathtype(pos) and mathtype(n) and n > pos then paid(n - pos) end
  end
  return remove(t, ...)
end

table.unpack = counting(unpack_t)
table.pack = per_arg(table.pack)
if rawequal(unpack, unpack_t) then unpack = table.unpack end

---------------------------------------------------------------------------------------------------
-- utf8: linear in the bytes scanned.

local uoffset, ucodes = utf8.offset, utf8.codes

utf8.char = per_arg(utf8.char)
utf8.codepoint = counting(utf8.codepoint)
utf8.len = by_first(utf8.len, 1)
-- Charged by the distance actually walked, so stepping through a long string stays linear.
utf8.offset = function(s, n, i)
  local p = uoffset(s, n, i)
  local from = i
  if from == nil and mathtype(n) then from = n >= 0 and 1 or len(s) + 1 end
  if mathtype(from) and from < 0 then from = len(s) + from + 1 end
  if mathtype(p) and mathtype(from) then
    local d = p - from
    paid((d < 0 and -d or d) // BYTES)
  else
    paid(len(s) // BYTES)
  end
  return p
end
-- The iterator skips continuation bytes and can be called by hand on any string and position.
utf8.codes = function(s, lax)
  local iter, state, control = ucodes(s, lax)
  return function(str, pos)
    local p, c = iter(str, pos)
    if mathtype(p) and mathtype(pos) then
      paid((p - pos) // BYTES)
    elseif p == nil then
      paid(len(str) // BYTES)
    end
    return p, c
  end, state, control
end

---------------------------------------------------------------------------------------------------
-- os.date calls strftime once per conversion: about 8 instructions' worth per format byte.

os.date = by_first(os.date, 8 * BYTES)
