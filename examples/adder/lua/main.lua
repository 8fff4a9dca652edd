-- Adder: two inputs and their sum.
Adder = session:prototype("Adder", {a = "", b = ""})

function Adder:compute()
  local x, y = tonumber(self.a), tonumber(self.b)
  if x == nil or y == nil then return "" end
  return x + y
end

function Adder:clear()
  self.a, self.b = "", ""
end

if not session:getApp() then
  session:createAppVariable(Adder:new())
end
