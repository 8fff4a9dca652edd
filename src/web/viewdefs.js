// The viewdef store (docs/viewdefs.md): key `Type.namespace` → template content, and the namespace
// cascade that picks one for a view.

export class Viewdefs {
  constructor() {
    this.map = new Map();
  }

  clear() {
    this.map.clear();
  }

  keys() {
    return [...this.map.keys()];
  }

  content(key) {
    return this.map.get(key);
  }

  /**
   * Stores every valid entry of a `viewdefs` property (a JSON string key → `<template>` text) and
   * returns the set of keys stored. Each text must be exactly one `<template>` element; parsing it
   * through a scratch template applies the HTML parser's rules (tables, selects) once, here.
   */
  deliver(json) {
    const stored = new Set();
    let entries;
    try {
      entries = JSON.parse(json);
    } catch (e) {
      console.error("ui-gateway: viewdefs are not JSON", e);
      return stored;
    }
    if (!entries || typeof entries !== "object") return stored;
    for (const [key, html] of Object.entries(entries)) {
      const scratch = document.createElement("template");
      scratch.innerHTML = String(html).trim();
      const nodes = [...scratch.content.childNodes].filter(
        (n) => n.nodeType === Node.ELEMENT_NODE || (n.nodeType === Node.TEXT_NODE && n.data.trim() !== ""),
      );
      if (nodes.length !== 1 || nodes[0].localName !== "template") {
        console.error(`ui-gateway: viewdef ${key} is not exactly one <template> element; skipped`);
        continue;
      }
      this.map.set(key, nodes[0].content);
      stored.add(key);
    }
    return stored;
  }

  /** `T.N`, then `T.F`, then `T.DEFAULT`; keys are whole strings, so T may contain dots. */
  resolve(type, namespace, fallback) {
    if (!type) return null;
    if (namespace && this.map.has(`${type}.${namespace}`)) return `${type}.${namespace}`;
    if (fallback && this.map.has(`${type}.${fallback}`)) return `${type}.${fallback}`;
    if (this.map.has(`${type}.DEFAULT`)) return `${type}.DEFAULT`;
    return null;
  }
}
