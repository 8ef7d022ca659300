//! The pure states (Pass, Choice, Succeed, Fail) that follow a step's state, run in the same step.

use asl::definition::{Kind, StateMachine};
use asl::run::{ExecutionInfo, Position, StateStep, SystemClock, run_state};

/// At most this many events in one step's commit (pure states chained after a state).
const CHAIN_EVENTS: usize = 200;

/// Runs the pure states (Pass, Choice, Succeed, Fail) that follow a step's state in the same
/// step, so that they commit together with it: running one again after a crash only repeats
/// its arithmetic, and the history is the same. A Task, Parallel, Map or Wait state is always
/// a step of its own.
pub(super) fn then_pure_states(
    machine: &StateMachine,
    position: &Position,
    info: &ExecutionInfo,
    mut step: StateStep,
) -> StateStep {
    loop {
        let (Ok((output, Some(next))), None, None) = (&step.result, &step.retrying, &step.waiting)
        else {
            return step;
        };
        let pure = machine.states.get(next).is_some_and(|s| {
            matches!(
                s.kind,
                Kind::Pass { .. } | Kind::Choice { .. } | Kind::Succeed | Kind::Fail { .. }
            )
        });
        if !pure || step.events.len() > CHAIN_EVENTS {
            return step;
        }
        let at = Position {
            state: next.clone(),
            input: output.clone(),
            variables: step.variables.clone(),
            attempts: None,
            callback: None,
            children: None,
            ..position.clone()
        };
        // Pure states run no task: the test runner stands in for the real one.
        let more = run_state(
            machine,
            &at,
            info,
            &mut asl::run::TestTasks,
            &mut SystemClock,
        );
        step.events.extend(more.events);
        step = StateStep {
            events: step.events,
            ..more
        };
    }
}
