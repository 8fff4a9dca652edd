// The variable store: one record per variable this connection knows.
//
// Watchers always read the merged record, never the bare message, so a properties-only update cannot
// blank a value.

const SUFFIX = /:(high|med|medium|low)$/;

export class Store {
  constructor() {
    this.records = new Map();
    this.nextId = 2;
  }

  /** Forgets everything; client ids restart at 2 on every connection. */
  reset() {
    this.records.clear();
    this.nextId = 2;
  }

  get size() {
    return this.records.size;
  }

  get(id) {
    return this.records.get(id);
  }

  allocate() {
    return this.nextId++;
  }

  /** Makes a record; `props` are the properties sent with the create (the server echoes them later). */
  add(id, parentId, props) {
    const rec = {
      id,
      parentId,
      hasValue: false,
      value: undefined,
      props: { ...props },
      error: null,
      watchers: new Set(),
      children: new Set(),
    };
    this.records.set(id, rec);
    this.records.get(parentId)?.children.add(id);
    return rec;
  }

  /** Registers fn(record, change) and returns the function that removes it. */
  watch(id, fn) {
    const rec = this.records.get(id);
    if (!rec) return () => {};
    rec.watchers.add(fn);
    return () => rec.watchers.delete(fn);
  }

  /** An incoming `update`: value if present, merged properties, error cleared, watchers told. */
  applyUpdate(id, data) {
    const rec = this.records.get(id);
    if (!rec) return null;
    const prevValue = rec.value;
    const hasValue = Object.prototype.hasOwnProperty.call(data, "value");
    if (hasValue) {
      rec.value = data.value;
      rec.hasValue = true;
    }
    const props = [];
    if (data.properties && typeof data.properties === "object") {
      for (const [k, v] of Object.entries(data.properties)) {
        const name = k.replace(SUFFIX, "");
        if (v === "" || v === null) delete rec.props[name];
        else rec.props[name] = String(v);
        props.push(name);
      }
    }
    const hadError = rec.error;
    rec.error = null;
    this.notify(rec, { update: true, value: hasValue, prevValue, props, clearedError: hadError });
    return rec;
  }

  /** An incoming `error` for a known variable. */
  applyError(id, code, description) {
    const rec = this.records.get(id);
    if (!rec) return null;
    rec.error = { code: String(code ?? ""), description: String(description ?? "") };
    this.notify(rec, { error: rec.error });
    return rec;
  }

  /** An incoming `destroy`: the record and its descendants go; their watchers learn it. */
  applyDestroy(id) {
    const gone = this.drop(id);
    for (const rec of gone) this.notify(rec, { destroyed: true });
    return gone.map((r) => r.id);
  }

  /** Removes a record and its descendants without telling anyone; returns them, children first. */
  drop(id) {
    const rec = this.records.get(id);
    if (!rec) return [];
    const out = [];
    const visit = (r) => {
      for (const c of r.children) {
        const child = this.records.get(c);
        if (child) visit(child);
      }
      this.records.delete(r.id);
      out.push(r);
    };
    visit(rec);
    this.records.get(rec.parentId)?.children.delete(id);
    return out;
  }

  /** A local write: the cache changes, watchers are not told (the DOM already shows it). */
  setLocal(id, value) {
    const rec = this.records.get(id);
    if (!rec) return;
    rec.value = value;
    rec.hasValue = true;
  }

  notify(rec, change) {
    for (const fn of [...rec.watchers]) fn(rec, change);
  }
}
