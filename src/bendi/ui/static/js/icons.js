// Line icons as SVG built in the DOM (no icon font, no emoji that a system may lack).
const PATHS = {
  copy: "M9 9h10v10H9z M5 15V5h10",
  trash: "M4 7h16 M10 11v6 M14 11v6 M6 7l1 13h10l1-13 M9 7V4h6v3",
  edit: "M4 20h4L19 9l-4-4L4 16z M13 7l4 4",
  refresh: "M20 11a8 8 0 1 0-2.3 5.7 M20 4v7h-7",
  settings: "M4 6h10 M18 6h2 M4 12h4 M12 12h8 M4 18h12 M20 18h0 M16 4v4 M10 10v4 M18 16v4",
  close: "M6 6l12 12 M18 6L6 18",
  menu: "M4 6h16 M4 12h16 M4 18h16",
  book: "M4 5a2 2 0 0 1 2-2h13v16H6a2 2 0 0 0-2 2z M4 19V5",
  check: "M5 12l5 5 9-10",
  user: "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z M4 20c1.5-3.5 4.5-5 8-5s6.5 1.5 8 5",
  logout: "M14 4h5v16h-5 M9 8l-4 4 4 4 M5 12h11",
  key: "M8 15a4 4 0 1 0 0-8 4 4 0 0 0 0 8z M11 11h10 M18 11v3 M21 11v2",
  shield: "M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6z",
};

export function icon(name, size = 16) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "1.8");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  svg.setAttribute("aria-hidden", "true");
  svg.classList.add("icon");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", PATHS[name] ?? "");
  svg.append(path);
  return svg;
}
