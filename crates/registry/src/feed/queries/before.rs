//! `pavilion.before(ms)`: true while the change being evaluated happens
//! before the Unix time `ms`, false from then on, and the query is asked
//! again at `ms` so that a row it admitted leaves the result on time.
//!
//! Drasi's own time functions answer "has this held for a while"
//! (`drasi.trueFor`) or "is it true once that time comes"
//! (`drasi.trueUntil`, `drasi.trueLater`); windows such as "pushed in the
//! last hour" need the converse: true now, false later.

use async_trait::async_trait;
use drasi_core::evaluation::context::SideEffects;
use drasi_core::evaluation::functions::ScalarFunction;
use drasi_core::evaluation::variable_value::VariableValue;
use drasi_core::evaluation::{ExpressionEvaluationContext, FunctionError, FunctionEvaluationError};
use drasi_core::interface::{FutureQueue, PushType};
use drasi_query_ast::ast;
use std::sync::{Arc, OnceLock};

/// The function's name in queries.
pub const NAME: &str = "pavilion.before";

/// The function; `queue` is the query's own future queue, set once the
/// query is built (the builder wraps the queue it is given, and re-checks
/// must go through the wrapper).
pub struct Before {
    pub queue: Arc<OnceLock<Arc<dyn FutureQueue>>>,
}

fn error(expression: &ast::FunctionExpression, error: FunctionEvaluationError) -> FunctionError {
    FunctionError {
        function_name: expression.name.to_string(),
        error,
    }
}

#[async_trait]
impl ScalarFunction for Before {
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
            return Ok(VariableValue::Bool(false));
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
        Ok(VariableValue::Bool(true))
    }
}
