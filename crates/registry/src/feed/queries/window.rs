//! Time windows: `pavilion.before(ms)` is true while the change being
//! evaluated happens before the Unix time `ms` and false from then on;
//! `pavilion.after(ms)` the converse. Either asks the query to look again
//! at `ms`, so a row enters or leaves the result on time, not at the next
//! change.
//!
//! Drasi's own time functions answer "has this held for a while"
//! (`drasi.trueFor`) or "is it true once that time comes"
//! (`drasi.trueUntil`, `drasi.trueLater`). Windows such as "pushed in the
//! last hour" need "true now, false later"; and `drasi.trueFor` after an
//! aggregation (drasi-core 0.5.10) keeps a row whose condition has turned
//! false, so "unsigned for an hour" is written as "pushed more than an
//! hour ago and unsigned" with `pavilion.after`, which holds no state: it
//! answers the same for the row before and after a change.

use async_trait::async_trait;
use drasi_core::evaluation::context::SideEffects;
use drasi_core::evaluation::functions::ScalarFunction;
use drasi_core::evaluation::variable_value::VariableValue;
use drasi_core::evaluation::{ExpressionEvaluationContext, FunctionError, FunctionEvaluationError};
use drasi_core::interface::{FutureQueue, PushType};
use drasi_query_ast::ast;
use std::sync::{Arc, OnceLock};

/// `pavilion.before`'s name in queries.
pub const BEFORE: &str = "pavilion.before";
/// `pavilion.after`'s name in queries.
pub const AFTER: &str = "pavilion.after";

/// Either function; `queue` is the query's own future queue, set once the
/// query is built (the builder wraps the queue it is given, and re-checks
/// must go through the wrapper).
pub struct Window {
    /// Whether this is `pavilion.after` (else `pavilion.before`).
    pub after: bool,
    pub queue: Arc<OnceLock<Arc<dyn FutureQueue>>>,
}

fn error(expression: &ast::FunctionExpression, error: FunctionEvaluationError) -> FunctionError {
    FunctionError {
        function_name: expression.name.to_string(),
        error,
    }
}

#[async_trait]
impl ScalarFunction for Window {
    async fn call(
        &self,
        context: &ExpressionEvaluationContext,
        expression: &ast::FunctionExpression,
        args: Vec<VariableValue>,
    ) -> Result<VariableValue, FunctionError> {
        let [arg] = args.as_slice() else {
            return Err(error(
                expression,
                FunctionEvaluationError::InvalidArgumentCount,
            ));
        };
        let due = match arg {
            VariableValue::Null => return Ok(VariableValue::Null),
            VariableValue::Integer(n) => n
                .as_u64()
                .ok_or_else(|| error(expression, FunctionEvaluationError::OverflowError))?,
            VariableValue::ZonedDateTime(d) => {
                u64::try_from(d.datetime().timestamp_millis()).unwrap_or(0)
            }
            _ => {
                return Err(error(
                    expression,
                    FunctionEvaluationError::InvalidArgument(0),
                ))
            }
        };
        let now = context.get_realtime();
        if now >= due {
            return Ok(VariableValue::Bool(self.after));
        }
        if let (SideEffects::Apply, Some(anchor), Some(queue)) = (
            context.get_side_effects(),
            context.get_anchor_element(),
            self.queue.get(),
        ) {
            queue
                .push(
                    PushType::IfNotExists,
                    expression.position_in_query,
                    context.get_input_grouping_hash(),
                    anchor.get_reference(),
                    context.get_transaction_time(),
                    due,
                )
                .await
                .map_err(|e| error(expression, FunctionEvaluationError::IndexError(e)))?;
        }
        Ok(VariableValue::Bool(!self.after))
    }
}
