// Injected as the first script of a copy of a built page (tests/test_site_browser.py): records what
// failed to load and what was requested, then, once the page and its scripts have run, what a
// reader sees, and posts it to the harness page that loaded this one in an iframe.
(() => {
  const failed = [];
  // Element loads (scripts, style sheets, images, fonts' sheets) that fail fire "error" on the
  // element; it does not bubble, so listen in the capture phase from the start.
  addEventListener("error", (e) => {
    const t = e.target;
    if (t && t !== window) failed.push(t.src || t.href || t.tagName);
  }, true);

  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && style.visibility !== "hidden" && style.display !== "none";
  };

  const report = () => {
    const blocks = [...document.querySelectorAll(".md-content pre")].map((pre) => {
      const code = pre.querySelector("code") || pre;
      const box = pre.closest(".highlight") || pre;
      const title = box.querySelector(".filename");
      return {
        title: title ? title.textContent.trim() : "",
        text: code.innerText,
        // the text is wider than its box: cut off, or behind a horizontal scroll bar
        clipped: code.scrollWidth > code.clientWidth + 1,
        visible: visible(pre),
        in_details: !!pre.closest("details"),
      };
    });
    const graphs = [...document.querySelectorAll(".md-content svg")].map((svg) => {
      const r = svg.getBoundingClientRect();
      const labels = [...svg.querySelectorAll("text")].filter(visible).map((t) => t.textContent.trim());
      return { width: r.width, height: r.height, labels };
    });
    const content = document.querySelector(".md-content");
    const result = {
      page: location.href,
      failed,
      requested: performance.getEntriesByType("resource").map((e) => e.name),
      blocks,
      graphs,
      text: content ? content.innerText : "",
      inline_code: [...document.querySelectorAll(".md-content :not(pre) > code")].map((c) => c.textContent),
      strong: [...document.querySelectorAll(".md-content strong")].map((s) => s.textContent),
    };
    parent.postMessage(JSON.stringify(result), "*");
  };
  // after the page's own scripts (the theme's, deferred) have run on the loaded page
  addEventListener("load", () => setTimeout(report, 1000));
})();
