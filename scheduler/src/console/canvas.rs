//! The render backend of the workflow graph's layout: layout-rs places the nodes and routes
//! the edges, then calls [`Canvas`] to draw them; it writes SVG with a CSS class per state's
//! outcome, a link from each state to its first event, and a Parallel's or Map's inner drawing
//! inside its box.

use std::fmt::Write as _;

use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;

use super::graph::{Drawing, NESTED_TITLE, Outcome, slug};
use super::pretty::escape;

const FONT: usize = 13;

/// What a node of the layout stands for, found again from its `properties` at render time.
pub(super) enum Node {
    State {
        name: String,
        kind: &'static str,
        outcome: Outcome,
        /// A Parallel's branches or a Map's processor, drawn already.
        nested: Option<Drawing>,
    },
    Start,
    End,
}

/// layout-rs's render backend: collects SVG elements and the extent they cover.
pub(super) struct Canvas {
    nodes: Vec<Node>,
    out: String,
    min: Point,
    max: Point,
}

impl Canvas {
    pub(super) fn new(nodes: Vec<Node>) -> Self {
        Self {
            nodes,
            out: String::new(),
            min: Point::new(f64::MAX, f64::MAX),
            max: Point::new(f64::MIN, f64::MIN),
        }
    }

    fn grow(&mut self, at: Point, size: Point) {
        self.min = Point::new(self.min.x.min(at.x), self.min.y.min(at.y));
        self.max = Point::new(self.max.x.max(at.x + size.x), self.max.y.max(at.y + size.y));
    }

    pub(super) fn finish(self) -> Drawing {
        if self.min.x > self.max.x {
            return Drawing {
                svg: String::new(),
                width: 0.,
                height: 0.,
            };
        }
        let margin = 4.;
        Drawing {
            svg: format!(
                "<g transform=\"translate({} {})\">{}</g>",
                margin - self.min.x,
                margin - self.min.y,
                self.out
            ),
            width: self.max.x - self.min.x + 2. * margin,
            height: self.max.y - self.min.y + 2. * margin,
        }
    }

    fn node(&self, properties: Option<&String>) -> Option<&Node> {
        self.nodes.get(properties?.parse::<usize>().ok()?)
    }
}

impl RenderBackend for Canvas {
    fn draw_rect(
        &mut self,
        xy: Point,
        size: Point,
        _look: &StyleAttr,
        properties: Option<String>,
        _clip: Option<ClipHandle>,
    ) {
        self.grow(xy, size);
        let mut out = String::new();
        if let Some(Node::State {
            name,
            kind,
            outcome,
            nested,
        }) = self.node(properties.as_ref())
        {
            let anchor = format!("#state-{}", escape(&slug(name)));
            let _ = write!(
                out,
                "<a href=\"{anchor}\"><rect class=\"state {}\" data-state=\"{}\" x=\"{}\" y=\"{}\" \
                 width=\"{}\" height=\"{}\" rx=\"6\"><title>{} ({kind}): {}</title></rect></a>",
                outcome.class(),
                escape(name),
                xy.x,
                xy.y,
                size.x,
                size.y,
                escape(name),
                outcome.label(),
            );
            if let Some(inner) = nested {
                let _ = write!(
                    out,
                    "<text class=\"nested-title\" x=\"{}\" y=\"{}\">{} ({kind})</text>\
                     <g transform=\"translate({} {})\">{}</g>",
                    xy.x + 8.,
                    xy.y + 17.,
                    escape(name),
                    xy.x + (size.x - inner.width) / 2.,
                    xy.y + NESTED_TITLE,
                    inner.svg
                );
            }
        } else {
            let _ = write!(
                out,
                "<rect class=\"plain\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                xy.x, xy.y, size.x, size.y
            );
        }
        self.out.push_str(&out);
    }

    fn draw_line(
        &mut self,
        start: Point,
        stop: Point,
        _look: &StyleAttr,
        _properties: Option<String>,
    ) {
        self.grow(start, Point::zero());
        self.grow(stop, Point::zero());
        let _ = write!(
            self.out,
            "<line class=\"edge\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
            start.x, start.y, stop.x, stop.y
        );
    }

    fn draw_circle(
        &mut self,
        xy: Point,
        size: Point,
        _look: &StyleAttr,
        _properties: Option<String>,
    ) {
        self.grow(Point::new(xy.x - size.x / 2., xy.y - size.y / 2.), size);
        let _ = write!(
            self.out,
            "<ellipse class=\"terminal\" cx=\"{}\" cy=\"{}\" rx=\"{}\" ry=\"{}\"/>",
            xy.x,
            xy.y,
            size.x / 2.,
            size.y / 2.
        );
    }

    fn draw_text(&mut self, xy: Point, text: &str, look: &StyleAttr) {
        if text.is_empty() {
            return;
        }
        let lines: Vec<&str> = text.lines().collect();
        let size = look.font_size.max(FONT) as f64;
        let top = xy.y - (lines.len() as f64 - 1.) * size * 0.6;
        self.out
            .push_str("<text class=\"label\" text-anchor=\"middle\">");
        for (i, line) in lines.iter().enumerate() {
            let class = if i == 0 { "name" } else { "kind" };
            let _ = write!(
                self.out,
                "<tspan class=\"{class}\" x=\"{}\" y=\"{}\" dominant-baseline=\"middle\">{}</tspan>",
                xy.x,
                top + i as f64 * size * 1.2,
                escape(line)
            );
        }
        self.out.push_str("</text>");
    }

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        dashed: bool,
        head: (bool, bool),
        _look: &StyleAttr,
        _properties: Option<String>,
        text: &str,
    ) {
        if path.len() < 2 {
            return;
        }
        for (a, b) in path {
            self.grow(*a, Point::zero());
            self.grow(*b, Point::zero());
        }
        let mut d = format!(
            "M {} {} C {} {}, {} {}, {} {}",
            path[0].0.x,
            path[0].0.y,
            path[0].1.x,
            path[0].1.y,
            path[1].0.x,
            path[1].0.y,
            path[1].1.x,
            path[1].1.y
        );
        for (a, b) in &path[2..] {
            let _ = write!(d, " S {} {}, {} {}", a.x, a.y, b.x, b.y);
        }
        let class = if dashed { "edge catch" } else { "edge" };
        let marker = if head.1 {
            " marker-end=\"url(#arrowhead)\""
        } else {
            ""
        };
        let _ = write!(self.out, "<path class=\"{class}\" d=\"{d}\"{marker}/>");
        if !text.is_empty() {
            // The label sits beside the middle of the edge.
            let mid = path[path.len() / 2].0;
            let _ = write!(
                self.out,
                "<text class=\"edge-label\" x=\"{}\" y=\"{}\">{}</text>",
                mid.x + 4.,
                mid.y,
                escape(text)
            );
        }
    }

    fn create_clip(&mut self, _xy: Point, _size: Point, _rounded_px: usize) -> ClipHandle {
        0
    }
}
