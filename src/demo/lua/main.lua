-- The built-in demo (`cargo run --release`): a gallery of the example apps around a click counter.
--
-- Variable 1 is the Demo app. It exposes `count` and `increment()`, which the load generator's
-- default scenario drives. The example apps (Adder, Tasks, Contacts, embedded from examples/) are
-- loaded only when their tab is first opened, so a session that never leaves the home page stays as
-- small as the counter alone.
Demo = session:prototype("Demo", {
  count = 0, title = "ui-gateway", page = "home", apps = EMPTY,
})

function Demo:increment()
  self.count = self.count + 1
end

function Demo:reset()
  self.count = 0
end

-- Each factory loads its example's Lua (which creates no app of its own: variable 1 exists) and
-- makes the app object with the same seed data the example site starts with.
local factories = {
  adder = function()
    require("adder")
    return Adder:new()
  end,
  tasks = function()
    require("tasks")
    local app = TasksApp:new({tasks = {}})
    app:add("Buy milk")
    app:add("Write spec").completed = true
    app:add("Walk dog")
    return app
  end,
  contacts = function()
    require("contacts")
    return ContactApp:seeded()
  end,
}

function Demo:open(name)
  if factories[name] == nil then return end
  self.apps = self.apps or {}
  if self.apps[name] == nil then self.apps[name] = factories[name]() end
  self.page = name
end

function Demo:showHome() self.page = "home" end
function Demo:showAdder() self:open("adder") end
function Demo:showTasks() self:open("tasks") end
function Demo:showContacts() self:open("contacts") end

function Demo:onHome() return self.page == "home" end
function Demo:notHome() return self.page ~= "home" end
function Demo:onAdder() return self.page == "adder" end
function Demo:onTasks() return self.page == "tasks" end
function Demo:onContacts() return self.page == "contacts" end

-- The app the current tab shows (nil on the home page, which the Demo view itself shows).
function Demo:current()
  if self.page == "home" or self.apps == nil then return nil end
  return self.apps[self.page]
end

function Demo:clicks()
  return self.count == 1 and "1 time" or (tostring(self.count) .. " times")
end

session:createAppVariable(Demo:new())
