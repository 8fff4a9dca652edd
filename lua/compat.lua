-- Lua 5.1 compatibility shims (docs/lua-api.md "Lua 5.1 compatibility"), loaded into every session's state so
-- ui-engine apps written for Lua 5.1 keep working on Lua 5.4.
-- Deliberately absent: setfenv, getfenv, module.
unpack = table.unpack
loadstring = function(s, name) return load(s, name) end
table.getn = function(t) return #t end
table.maxn = function(t)
  local m = 0
  for k in pairs(t) do
    if type(k) == "number" and k > m then m = k end
  end
  return m
end
math.pow = function(x, y) return x ^ y end
math.log10 = function(x) return math.log(x, 10) end
math.mod = math.fmod
math.ldexp = function(m, e) return m * 2.0 ^ e end
math.frexp = function(x)
  if x == 0 then return 0.0, 0 end
  local e = math.floor(math.log(math.abs(x), 2)) + 1
  return x / 2.0 ^ e, e
end
math.cosh = function(x) return (math.exp(x) + math.exp(-x)) / 2 end
math.sinh = function(x) return (math.exp(x) - math.exp(-x)) / 2 end
math.tanh = function(x)
  local a, b = math.exp(x), math.exp(-x)
  return (a - b) / (a + b)
end
string.gfind = string.gmatch
