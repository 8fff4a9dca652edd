-- Contacts: a searchable address book with a detail box and an edit form.
--
-- The list goes through lua.ViewList with `itemWrapper=ContactPresenter`, so each row has its own
-- presenter (holding the row-only `expanded` flag) that follows its contact, not its position.

-- Trims white space in linear time. (The usual `s:match("^%s*(.-)%s*$")` backtracks quadratically on a
-- long run of spaces: a long enough input field would keep the session busy until its time limit.)
local function trim(s)
  local first = s:find("%S")
  if not first then return "" end
  return s:sub(first, #s - s:reverse():find("%S") + 1)
end

Contact = session:prototype("Contact", {
  first = "", last = "", email = "", phone = "", emergency = EMPTY, app = EMPTY,
})

function Contact:fullName()
  return trim(self.first .. " " .. self.last)
end

function Contact:initials()
  return (self.first:sub(1, 1) .. self.last:sub(1, 1)):upper()
end

function Contact:emergencyName()
  return self.emergency and self.emergency:fullName() or ""
end

local function by_name(a, b)
  local x, y = a:fullName():lower(), b:fullName():lower()
  if x == y then return a.email < b.email end
  return x < y
end

-- One row of the list: presenter of a lua.ViewListItem.
ContactPresenter = session:prototype("ContactPresenter", {listItem = EMPTY, expanded = false})

function ContactPresenter:new(li)
  return session:create(ContactPresenter, {listItem = li, expanded = false})
end

function ContactPresenter:contact() return self.listItem.baseItem end
function ContactPresenter:name() return self:contact():fullName() end
function ContactPresenter:email() return self:contact().email end
function ContactPresenter:phone() return self:contact().phone end
function ContactPresenter:initials() return self:contact():initials() end
function ContactPresenter:toggle() self.expanded = not self.expanded end
function ContactPresenter:view() self:contact().app:view(self:contact()) end
function ContactPresenter:edit() self:contact().app:edit(self:contact()) end
function ContactPresenter:delete() self:contact().app:delete(self:contact()) end

-- The edit form's state: a copy of the fields, saved back (or into a new contact) on Save.
ContactDraft = session:prototype("ContactDraft", {
  app = EMPTY, target = EMPTY, first = "", last = "", email = "", phone = "", emergency = "", error = "",
})

-- Everyone but the contact being edited, sorted; the select stores an index into this list.
function ContactDraft:emergencyOptions()
  local out = {}
  for _, c in ipairs(self.app.people) do
    if c ~= self.target then out[#out + 1] = c end
  end
  table.sort(out, by_name)
  return out
end

function ContactDraft:title()
  return self.target and "Edit contact" or "New contact"
end

function ContactDraft:noError() return self.error == "" end

function ContactDraft:save()
  local first, last = trim(self.first), trim(self.last)
  local email = trim(self.email)
  if first == "" then
    self.error = "First name is required"
    return
  end
  if email ~= "" and not email:match("^[^@%s]+@[^@%s]+$") then
    self.error = "That email address does not look right"
    return
  end
  local index = tonumber(self.emergency)
  local emergency = index and self:emergencyOptions()[index + 1] or nil
  local c = self.target
  if c == nil then
    c = Contact:new({app = self.app})
    table.insert(self.app.people, c)
  end
  c.first, c.last, c.email, c.phone = first, last, email, trim(self.phone)
  c.emergency = emergency
  self.app.draft = nil
end

function ContactDraft:cancel()
  self.app.draft = nil
end

-- `people` holds every contact; `contacts()` is the sorted, searched view of it the list shows.
ContactApp = session:prototype("ContactApp", {
  people = EMPTY, search = "", selected = EMPTY, draft = EMPTY,
})

function ContactApp:add(first, last, email, phone)
  local c = Contact:new({first = first, last = last, email = email, phone = phone or "", app = self})
  table.insert(self.people, c)
  return c
end

-- The contacts matching the search (name or email, case-insensitive), sorted by full name.
function ContactApp:contacts()
  local q = trim(self.search:lower())
  local out = {}
  for _, c in ipairs(self.people) do
    if q == "" or c:fullName():lower():find(q, 1, true) or c.email:lower():find(q, 1, true) then
      out[#out + 1] = c
    end
  end
  table.sort(out, by_name)
  return out
end

function ContactApp:count() return #self:contacts() end
function ContactApp:editing() return self.draft ~= nil end
function ContactApp:noSelection() return self.selected == nil end
function ContactApp:empty() return #self:contacts() == 0 end

function ContactApp:view(c) self.selected = c end
function ContactApp:closeSelected() self.selected = nil end

function ContactApp:edit(c)
  local index = ""
  local draft = ContactDraft:new({
    app = self, target = c, first = c.first, last = c.last, email = c.email, phone = c.phone,
  })
  if c.emergency then
    for i, o in ipairs(draft:emergencyOptions()) do
      if o == c.emergency then index = tostring(i - 1) end
    end
  end
  draft.emergency = index
  self.draft = draft
end

function ContactApp:newContact()
  self.draft = ContactDraft:new({app = self})
end

-- Enter in the search box opens the first match for editing.
function ContactApp:openFirst()
  local first = self:contacts()[1]
  if first then self:edit(first) end
end

function ContactApp:delete(c)
  for i, o in ipairs(self.people) do
    if o == c then table.remove(self.people, i) break end
  end
  for _, o in ipairs(self.people) do
    if o.emergency == c then o.emergency = nil end
  end
  if self.selected == c then self.selected = nil end
  if self.draft and self.draft.target == c then self.draft = nil end
end

function ContactApp:seeded()
  local app = ContactApp:new({people = {}})
  app:add("Alice", "Smith", "alice@example.com", "555-0100")
  app:add("Bob", "Johnson", "bob@example.com", "555-0101")
  app:add("Carol", "Williams", "carol@example.com", "555-0102")
  return app
end

if not session:getApp() then
  session:createAppVariable(ContactApp:seeded())
end
