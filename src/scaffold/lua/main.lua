-- Your app's Lua: one copy of it runs per browser session. Objects made with a prototype are
-- what the page shows; the viewdefs in viewdefs/ say how (docs/getting-started.md, docs/lua-api.md).

-- One row of the list. `EMPTY` declares a field that starts as nil.
Item = session:prototype("Item", {name = "", done = false, app = EMPTY})

function Item:remove()
  self.app:removeItem(self)
end

-- The app: what variable 1 shows (viewdefs/App.DEFAULT.html).
App = session:prototype("App", {title = "My list", items = EMPTY, newName = ""})

function App:add()
  local name = self.newName or ""
  if not name:find("%S") then return end
  table.insert(self.items, Item:new({name = name, app = self}))
  self.newName = ""
end

function App:removeItem(item)
  for i, it in ipairs(self.items) do
    if it == item then
      table.remove(self.items, i)
      return
    end
  end
end

function App:left()
  local n = 0
  for _, it in ipairs(self.items) do
    if not it.done then n = n + 1 end
  end
  return n
end

-- Made once per session: under --watch this file runs again on every save, and the guard keeps the
-- list you have while the new methods take effect.
if not session:getApp() then
  local app = App:new({items = {}})
  app.newName = "Try ui-gateway"
  app:add()
  session:createAppVariable(app)
end
