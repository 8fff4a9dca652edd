-- The built-in demo: a click counter. Variable 1 exposes `count` and `increment()`, which the load
-- generator's default scenario drives.
local Demo = {type = "Demo"}
Demo.__index = Demo

function Demo:increment()
  self.count = self.count + 1
end

function Demo:reset()
  self.count = 0
end

session:createAppVariable(setmetatable({count = 0, title = "ui-gateway demo"}, Demo))
