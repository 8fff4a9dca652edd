-- Bounded library functions (docs/lua-limits.md, src/lua/bounded.rs).
--
-- C library functions run without the instruction hook, so one call could loop for as long as its
-- input asks. Each function below either is the Rust pattern matcher (which counts its own steps) or
-- wraps the stock function and charges its work, in steps, to the phase's instruction budget: a step
-- is one element moved or visited, or 16 bytes copied. Small amounts are gathered in `pending` and
-- charged 64 Ki steps at a time (what the wrapper's own instructions already pay for); the stock
-- function still does the work, so results and error messages stay Lua's.
local FAIL, impl, charge = ...

local error, select, type, rawequal, tostring = error, select, type, rawequal, tostring
local mathtype, log, ceil = math.type, math.log, math.ceil
local string, table, utf8 = string, table, utf8

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

-- The Rust pattern functions return FAIL, message for the errors stock Lua raises with luaL_error, so
-- they reach scripts as the same plain strings. Callers reach `check` by a tail call, so level 2 is
-- the script that called the library function: the position luaL_error would have added.
local function check(first, ...)
  if rawequal(first, FAIL) then error((...), 2) end
  return first, ...
end

-- Charges one step per value returned.
local function counted(...)
  paid(select('#', ...))
  return ...
end

-- Lengths of string-or-number arguments (what the C side converts), 0 for anything else.
local function len(v)
  local t = type(v)
  if t == 'string' then return #v end
  if t == 'number' then return #tostring(v) end
  return 0
end

---------------------------------------------------------------------------------------------------
-- Patterns: the step-counted matcher.

local pfind, pmatch, pgsub, pgmatch = impl.find, impl.match, impl.gsub, impl.gmatch
local stock_gmatch = string.gmatch
string.find = function(...) return check(pfind(...)) end
string.match = function(...) return check(pmatch(...)) end
string.gsub = function(...) return check(pgsub(...)) end
string.gmatch = function(...)
  local it = check(pgmatch(...))
  return function() return check(it()) end
end
if rawequal(string.gfind, stock_gmatch) then string.gfind = string.gmatch end

---------------------------------------------------------------------------------------------------
-- Strings: linear in what they produce.

local rep, format, upper, lower, reverse, sub, byte, char =
  string.rep, string.format, string.upper, string.lower, string.reverse, string.sub, string.byte, string.char
local pack, unpack_s, packsize = string.pack, string.unpack, string.packsize

-- `rep` is charged before it runs: one step per copy (rep("", 1e15) copies nothing 1e15 times) plus
-- the bytes. A result too big for the heap is left to the stock function, which fails at once.
string.rep = function(s, n, sep)
  if mathtype(n) and n > 1 then
    local total = (len(s) + len(sep)) * n
    if total < 2 ^ 40 then paid(n + total // BYTES) end
  end
  return rep(s, n, sep)
end

local function produced(r)
  paid(#r // BYTES)
  return r
end

string.format = function(...) return produced(format(...)) end
string.upper = function(s) return produced(upper(s)) end
string.lower = function(s) return produced(lower(s)) end
string.reverse = function(s) return produced(reverse(s)) end
string.sub = function(s, i, j) return produced(sub(s, i, j)) end
string.byte = function(s, i, j) return counted(byte(s, i, j)) end
string.char = function(...)
  paid(select('#', ...))
  return char(...)
end
string.pack = function(fmt, ...)
  paid(len(fmt) // BYTES + select('#', ...))
  return produced(pack(fmt, ...))
end
string.unpack = function(fmt, s, pos)
  paid(len(fmt) // BYTES)
  return counted(unpack_s(fmt, s, pos))
end
string.packsize = function(fmt)
  paid(len(fmt) // BYTES)
  return packsize(fmt)
end

---------------------------------------------------------------------------------------------------
-- Tables: linear in the elements they visit.

local move, concat, sort, insert, remove, unpack_t, tpack =
  table.move, table.concat, table.sort, table.insert, table.remove, table.unpack, table.pack

-- Charged before moving: table.move({}, 1, 3e8, 1, {}) never allocates, so nothing else stops it.
table.move = function(a1, f, e, t, a2)
  if mathtype(f) and mathtype(e) and e >= f then
    paid(e - f + 1)
  end
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
    local pos = ...
    local n = #t
    if mathtype(pos) and mathtype(n) and n >= pos then paid(n - pos + 1) end
  end
  return insert(t, ...)
end
table.remove = function(t, ...)
  if select('#', ...) >= 1 and type(t) == 'table' then
    local pos = ...
    local n = #t
    if mathtype(pos) and mathtype(n) and n > pos then paid(n - pos) end
  end
  return remove(t, ...)
end

table.unpack = function(list, i, j) return counted(unpack_t(list, i, j)) end
table.pack = function(...)
  paid(select('#', ...))
  return tpack(...)
end
if rawequal(unpack, unpack_t) then unpack = table.unpack end

---------------------------------------------------------------------------------------------------
-- utf8: linear in the bytes scanned.

local uchar, ucodepoint, ulen, uoffset, ucodes = utf8.char, utf8.codepoint, utf8.len, utf8.offset, utf8.codes

utf8.char = function(...)
  paid(select('#', ...))
  return uchar(...)
end
utf8.codepoint = function(s, i, j, lax) return counted(ucodepoint(s, i, j, lax)) end
utf8.len = function(s, i, j, lax)
  paid(len(s) // BYTES)
  return ulen(s, i, j, lax)
end
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
-- os.date calls strftime once per conversion: linear in the format, at about 8 instructions' worth
-- per format byte.

local date = os.date
os.date = function(fmt, t)
  paid(len(fmt) * 8)
  return date(fmt, t)
end
