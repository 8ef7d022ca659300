//! A workflow drawn as a graph: states as boxes, transitions as arrows (Choice rules and
//! defaults labelled, Catch dashed), Parallel branches and Map item processors drawn inside
//! their state's box, each state coloured by what happened to it. layout-rs places the nodes
//! and routes the edges (Graphviz's layered layout); `console::canvas` is its render backend,
//! writing SVG with a CSS class per outcome and a link from each state to its events.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use asl::definition::{Kind, StateMachine};
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;
use ops::workflows::HistoryEvent;

use super::canvas::{Canvas, Node};
use super::pretty::escape;

/// What happened to a state in an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    NotReached,
    Running,
    Succeeded,
    /// It failed and a Catch took the execution on.
    Caught,
    Failed,
    Aborted,
}

impl Outcome {
    pub fn class(self) -> &'static str {
        match self {
            Outcome::NotReached => "not-reached",
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::Caught => "caught",
            Outcome::Failed => "failed",
            Outcome::Aborted => "aborted",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::NotReached => "not reached",
            other => other.class(),
        }
    }
}

/// What an execution's history says of its states.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub states: HashMap<String, Outcome>,
    /// The state the execution failed in, as its history tells it.
    pub failed_in: Option<String>,
}

/// Each state's outcome from an execution's history: entered and not left is running, or, where
/// the execution then failed, timed out or was aborted, failed or aborted; a failure followed by
/// the state's exit is caught (a retry that succeeds clears it).
pub fn outcomes(history: &[HistoryEvent]) -> Outcomes {
    let mut found = Outcomes::default();
    let mut failed: HashSet<String> = HashSet::new();
    for event in history {
        let kind = event.kind.as_str();
        let ended = match kind {
            "ExecutionFailed" | "ExecutionTimedOut" => Some(Outcome::Failed),
            "ExecutionAborted" => Some(Outcome::Aborted),
            _ => None,
        };
        if let Some(how) = ended {
            for (state, outcome) in &mut found.states {
                if *outcome == Outcome::Running {
                    *outcome = how;
                    if how == Outcome::Failed {
                        found.failed_in = Some(state.clone());
                    }
                }
            }
            continue;
        }
        let Some(state) = event.state.as_deref() else {
            continue;
        };
        if kind.ends_with("StateEntered") {
            failed.remove(state);
            found.states.insert(state.to_owned(), Outcome::Running);
        } else if kind.ends_with("StateExited") {
            let caught = failed.remove(state);
            let result = if caught {
                Outcome::Caught
            } else {
                Outcome::Succeeded
            };
            found.states.insert(state.to_owned(), result);
        } else if kind.ends_with("Failed") || kind.ends_with("TimedOut") {
            failed.insert(state.to_owned());
        } else if kind.ends_with("Succeeded") {
            failed.remove(state);
        }
    }
    found
}

/// An SVG drawing and its size.
pub struct Drawing {
    pub svg: String,
    pub width: f64,
    pub height: f64,
}

impl Drawing {
    /// The drawing as a standalone `<svg>` element.
    pub fn into_svg(self, title: &str) -> String {
        format!(
            "<svg class=\"graph\" role=\"img\" aria-label=\"{}\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\
             <title>{}</title><defs><marker id=\"arrowhead\" markerWidth=\"10\" markerHeight=\"7\" \
             refX=\"10\" refY=\"3.5\" orient=\"auto\"><polygon points=\"0 0, 10 3.5, 0 7\" \
             fill=\"context-stroke\"/></marker></defs>{}</svg>",
            escape(title),
            escape(title),
            self.svg,
            w = self.width.ceil(),
            h = self.height.ceil(),
        )
    }
}

const CHAR_WIDTH: f64 = 7.4;
const NESTED_PAD: f64 = 14.0;
pub(super) const NESTED_TITLE: f64 = 26.0;
const BRANCH_GAP: f64 = 18.0;

/// The `<svg>` of a state machine with each state's outcome, titled; None where the layout
/// fails (layout-rs panics on shapes it cannot place: the page is shown without its graph, and
/// the failure is logged).
pub fn svg(
    machine: &StateMachine,
    outcomes: &HashMap<String, Outcome>,
    title: &str,
) -> Option<String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| draw(machine, outcomes))) {
        Ok(drawing) => Some(drawing.into_svg(title)),
        Err(_) => {
            tracing::error!(graph = %title, "the workflow graph could not be laid out");
            None
        }
    }
}

/// Draws a state machine with each state's outcome (absent: not reached).
pub fn draw(machine: &StateMachine, outcomes: &HashMap<String, Outcome>) -> Drawing {
    let mut graph = VisualGraph::new(Orientation::TopToBottom);
    let mut nodes: Vec<Node> = Vec::new();
    let mut handles = HashMap::new();
    let edge_look = StyleAttr::new(Color::fast("black"), 1, None, 0, 11);
    let add =
        |graph: &mut VisualGraph, nodes: &mut Vec<Node>, node: Node, size: Point, text: &str| {
            let shape = match node {
                Node::State { .. } => ShapeKind::new_box(text),
                _ => ShapeKind::new_circle(text),
            };
            let element = Element::create_with_properties(
                shape,
                StyleAttr::simple(),
                Orientation::TopToBottom,
                size,
                nodes.len().to_string(),
            );
            nodes.push(node);
            graph.add_node(element)
        };
    let start = add(
        &mut graph,
        &mut nodes,
        Node::Start,
        Point::new(60., 30.),
        "Start",
    );
    let mut end = None;
    for name in order(machine) {
        let state = &machine.states[&name];
        let outcome = outcomes.get(&name).copied().unwrap_or(Outcome::NotReached);
        let nested = match &state.kind {
            Kind::Parallel { branches } => Some(side_by_side(
                branches.iter().map(|b| draw(b, outcomes)).collect(),
            )),
            Kind::Map { processor, .. } => Some(draw(processor, outcomes)),
            _ => None,
        };
        let kind = state.kind.type_name();
        let label_width = (name.len().max(kind.len() + 2) as f64) * CHAR_WIDTH + 28.;
        let size = match &nested {
            Some(inner) => Point::new(
                (inner.width + 2. * NESTED_PAD).max(label_width),
                inner.height + NESTED_TITLE + NESTED_PAD,
            ),
            None => Point::new(label_width.max(90.), 44.),
        };
        let text = if nested.is_some() {
            String::new()
        } else {
            format!("{name}\n{kind}")
        };
        let node = Node::State {
            name: name.clone(),
            kind,
            outcome,
            nested,
        };
        handles.insert(name, add(&mut graph, &mut nodes, node, size, &text));
    }
    let arrow = |label: &str, dashed: bool| {
        let mut arrow = Arrow::new(
            LineEndKind::None,
            LineEndKind::Arrow,
            if dashed {
                layout::core::style::LineStyleKind::Dashed
            } else {
                layout::core::style::LineStyleKind::Normal
            },
            label,
            &edge_look,
            &None,
            &None,
        );
        arrow.look.font_size = 11;
        arrow
    };
    graph.add_edge(arrow("", false), start, handles[&machine.start_at]);
    let mut sorted: Vec<_> = machine.states.values().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for state in sorted {
        let from = handles[&state.name];
        let mut to_end = matches!(state.kind, Kind::Succeed | Kind::Fail { .. });
        match &state.kind {
            Kind::Choice { choices, default } => {
                for (i, choice) in choices.iter().enumerate() {
                    if let Some(&to) = handles.get(&choice.next) {
                        graph.add_edge(arrow(&format!("rule {}", i + 1), false), from, to);
                    }
                }
                if let Some(to) = default.as_ref().and_then(|d| handles.get(d)) {
                    graph.add_edge(arrow("default", false), from, *to);
                }
            }
            _ => match state.next.as_ref().and_then(|n| handles.get(n)) {
                Some(&to) => graph.add_edge(arrow("", false), from, to),
                None => to_end = true,
            },
        }
        for catcher in &state.catch {
            if let Some(&to) = handles.get(&catcher.next) {
                graph.add_edge(arrow("catch", true), from, to);
            }
        }
        if to_end {
            let end = *end.get_or_insert_with(|| {
                add(
                    &mut graph,
                    &mut nodes,
                    Node::End,
                    Point::new(60., 30.),
                    "End",
                )
            });
            graph.add_edge(arrow("", false), from, end);
        }
    }
    let mut canvas = Canvas::new(nodes);
    graph.do_it(false, false, false, &mut canvas);
    canvas.finish()
}

/// States in the order a reader follows them: breadth first from `StartAt`, then any others
/// by name.
fn order(machine: &StateMachine) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([machine.start_at.clone()]);
    let mut out = Vec::new();
    while let Some(name) = queue.pop_front() {
        let Some(state) = machine.states.get(&name) else {
            continue;
        };
        if !seen.insert(name.clone()) {
            continue;
        }
        out.push(name);
        if let Kind::Choice { choices, default } = &state.kind {
            queue.extend(choices.iter().map(|c| c.next.clone()));
            queue.extend(default.iter().cloned());
        }
        queue.extend(state.next.iter().cloned());
        queue.extend(state.catch.iter().map(|c| c.next.clone()));
    }
    let mut rest: Vec<_> = machine
        .states
        .keys()
        .filter(|n| !seen.contains(*n))
        .cloned()
        .collect();
    rest.sort();
    out.extend(rest);
    out
}

/// Parallel branches, side by side, each framed.
fn side_by_side(branches: Vec<Drawing>) -> Drawing {
    let mut svg = String::new();
    let mut x = 0.;
    let mut height: f64 = 0.;
    for (i, branch) in branches.iter().enumerate() {
        let _ = write!(
            svg,
            "<g transform=\"translate({x} 0)\"><rect class=\"branch\" x=\"0\" y=\"0\" width=\"{}\" height=\"{}\"/>\
             <text class=\"branch-title\" x=\"6\" y=\"14\">branch {}</text>\
             <g transform=\"translate(0 18)\">{}</g></g>",
            branch.width,
            branch.height + 18.,
            i + 1,
            branch.svg
        );
        x += branch.width + BRANCH_GAP;
        height = height.max(branch.height + 18.);
    }
    Drawing {
        svg,
        width: (x - BRANCH_GAP).max(0.),
        height,
    }
}

/// A state's name as an HTML id fragment (the history table's rows use the same).
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, state: &str) -> HistoryEvent {
        HistoryEvent {
            id: 0,
            kind: kind.into(),
            state: Some(state.into()),
            details: json!({}),
            timestamp: String::new(),
            at_ms: 0,
        }
    }

    fn ended(kind: &str) -> HistoryEvent {
        HistoryEvent {
            state: None,
            ..event(kind, "")
        }
    }

    #[test]
    fn outcomes_follow_the_history() {
        let history = [
            event("TaskStateEntered", "Load"),
            event("TaskFailed", "Load"),
            event("TaskSucceeded", "Load"), // a retry that worked
            event("TaskStateExited", "Load"),
            event("TaskStateEntered", "Train"),
            event("TaskFailed", "Train"),
            event("TaskStateExited", "Train"), // caught
            event("PassStateEntered", "Recover"),
            event("PassStateExited", "Recover"),
            event("FailStateEntered", "Publish"),
            ended("ExecutionFailed"),
        ];
        let got = outcomes(&history);
        assert_eq!(got.states["Load"], Outcome::Succeeded);
        assert_eq!(got.states["Train"], Outcome::Caught);
        assert_eq!(got.states["Recover"], Outcome::Succeeded);
        assert_eq!(got.states["Publish"], Outcome::Failed);
        assert_eq!(got.failed_in.as_deref(), Some("Publish"));
        assert!(!got.states.contains_key("Never"));
        let running = outcomes(&history[..10]);
        assert_eq!(running.states["Publish"], Outcome::Running);
        let mut aborted = history[..10].to_vec();
        aborted.push(ended("ExecutionAborted"));
        assert_eq!(outcomes(&aborted).states["Publish"], Outcome::Aborted);
        // A redrive enters the state again.
        let mut redriven = history.to_vec();
        redriven.push(ended("ExecutionRedriven"));
        redriven.push(event("PassStateEntered", "Publish"));
        assert_eq!(outcomes(&redriven).states["Publish"], Outcome::Running);
    }

    #[test]
    fn draws_every_state_with_its_outcome_and_nesting() {
        let machine = StateMachine::parse(&json!({
            "StartAt": "Pick",
            "States": {
                "Pick": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": 1, "Next": "Fan"}],
                         "Default": "Done"},
                "Fan": {"Type": "Parallel", "Next": "Done", "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
                    {"StartAt": "B", "States": {"B": {"Type": "Map", "End": true,
                        "ItemProcessor": {"StartAt": "C", "States": {"C": {"Type": "Pass", "End": true}}}}}}]},
                "Done": {"Type": "Succeed"}
            }
        }))
        .unwrap();
        let outcomes = HashMap::from([
            ("Pick".to_owned(), Outcome::Succeeded),
            ("Fan".to_owned(), Outcome::Running),
            ("A".to_owned(), Outcome::Succeeded),
        ]);
        let svg = draw(&machine, &outcomes).into_svg("test <graph>");
        for (state, class) in [
            ("Pick", "succeeded"),
            ("Fan", "running"),
            ("A", "succeeded"),
            ("B", "not-reached"),
            ("C", "not-reached"),
            ("Done", "not-reached"),
        ] {
            assert!(
                svg.contains(&format!("class=\"state {class}\" data-state=\"{state}\"")),
                "{state} is not drawn as {class}: {svg}"
            );
        }
        assert!(
            svg.contains(">rule 1<") && svg.contains(">default<"),
            "{svg}"
        );
        assert!(svg.contains("branch 2") && svg.contains("test &lt;graph&gt;"));
        // Nested drawings sit inside their state's box.
        assert_eq!(svg.matches("<svg").count(), 1);
    }
}
