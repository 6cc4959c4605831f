//! One continuous query over the registry's graph, on drasi-core: the
//! elements it has been given (so that a node's removal takes its
//! relations with it, which the element index does not do by itself), the
//! current result set, and the diff of a batch of changes.

use super::window::{Window, AFTER, BEFORE};
use drasi_core::evaluation::context::{QueryPartEvaluationContext, QueryVariables};
use drasi_core::evaluation::functions::{Function, FunctionRegistry};
use drasi_core::in_memory_index::in_memory_element_index::InMemoryElementIndex;
use drasi_core::in_memory_index::in_memory_future_queue::InMemoryFutureQueue;
use drasi_core::in_memory_index::in_memory_result_index::InMemoryResultIndex;
use drasi_core::models::{
    Element, ElementMetadata, ElementPropertyMap, ElementReference, SourceChange,
};
use drasi_core::query::{ContinuousQuery, QueryBuilder};
use drasi_functions_cypher::CypherFunctionSet;
use drasi_query_cypher::CypherParser;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// Every element's source name (drasi keys elements by source and id).
const SOURCE: &str = "pavilion";

/// Why a query could not be built or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The text is not a query this engine runs.
    #[error("query: {0}")]
    Parse(String),
    /// Evaluating a change failed (a function given the wrong type, ...).
    #[error("query evaluation failed: {0}")]
    Evaluation(String),
    /// The graph passed the element limit.
    #[error("the registry's graph passed this server's limit of {0} elements for continuous queries ([events] query_max_elements)")]
    TooLarge(usize),
}

/// Rows that entered, changed and left the result in one batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Diff {
    pub added: Vec<Value>,
    pub updated: Vec<(Value, Value)>,
    pub removed: Vec<Value>,
}

impl Diff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}

struct Relation {
    label: &'static str,
    from: String,
    to: String,
}

/// A query and the graph it has seen.
pub struct Graph {
    query: ContinuousQuery,
    nodes: HashMap<String, &'static str>,
    relations: HashMap<String, Relation>,
    /// Relations by each of their ends, to remove them with a node.
    ends: HashMap<String, HashSet<String>>,
    /// The result, by drasi's row signature.
    rows: BTreeMap<u64, Value>,
    /// Rows touched since the last [`Graph::take_diff`], with their value
    /// before the batch (`None`: not in the result then).
    touched: HashMap<u64, Option<Value>>,
    max_elements: usize,
    /// The labels the query names; `None` when a pattern leaves a node or
    /// relation unlabelled (then every element may match).
    wanted: Option<HashSet<String>>,
}

/// The labels `query` names, or `None` when some node or relation of its
/// patterns has none.
fn labels(query: &drasi_query_ast::ast::Query) -> Option<HashSet<String>> {
    let mut out = HashSet::new();
    for part in &query.parts {
        for clause in &part.match_clauses {
            let nodes = std::iter::once(&clause.start).chain(clause.path.iter().map(|(_, n)| n));
            for n in nodes {
                if n.labels.is_empty() {
                    return None;
                }
                out.extend(n.labels.iter().map(|l| l.to_string()));
            }
            for (r, _) in &clause.path {
                if r.labels.is_empty() {
                    return None;
                }
                out.extend(r.labels.iter().map(|l| l.to_string()));
            }
        }
    }
    Some(out)
}

fn reference(id: &str) -> ElementReference {
    ElementReference::new(SOURCE, id)
}

fn metadata(id: &str, label: &str, at: u64) -> ElementMetadata {
    ElementMetadata {
        reference: reference(id),
        labels: Arc::new([Arc::from(label)]),
        effective_from: at,
    }
}

fn row(v: &QueryVariables) -> Value {
    Value::Object(
        v.iter()
            .map(|(k, v)| (k.to_string(), Value::from(v.clone())))
            .collect(),
    )
}

impl Graph {
    /// Builds `text` (Cypher, as drasi-core reads it, with its function
    /// set and the windows of [`super::window`]).
    pub async fn build(text: &str, max_elements: usize) -> Result<Graph, QueryError> {
        let functions = Arc::new(FunctionRegistry::new()).with_cypher_function_set();
        let queue_slot = Arc::new(OnceLock::new());
        for (name, after) in [(BEFORE, false), (AFTER, true)] {
            functions.register_function(
                name,
                Function::Scalar(Arc::new(Window {
                    after,
                    queue: queue_slot.clone(),
                })),
            );
        }
        let parser = Arc::new(CypherParser::new(functions.clone()));
        let query = QueryBuilder::new(text, parser)
            .with_function_registry(functions)
            .with_element_index(Arc::new(InMemoryElementIndex::new()))
            .with_result_index(Arc::new(InMemoryResultIndex::new()))
            .with_future_queue(Arc::new(InMemoryFutureQueue::new()))
            .try_build()
            .await
            .map_err(|e| QueryError::Parse(one_line(&e.to_string())))?;
        let _ = queue_slot.set(query.future_queue());
        let wanted = labels(&query.get_query());
        Ok(Graph {
            wanted,
            query,
            nodes: HashMap::new(),
            relations: HashMap::new(),
            ends: HashMap::new(),
            rows: BTreeMap::new(),
            touched: HashMap::new(),
            max_elements,
        })
    }

    /// The current result, in a stable order.
    pub fn rows(&self) -> Vec<Value> {
        let mut rows: Vec<Value> = self.rows.values().cloned().collect();
        rows.sort_by_cached_key(Value::to_string);
        rows
    }

    /// Whether the query can match elements labelled `label` (those it
    /// cannot are never given to it: they would only cost memory).
    pub fn wants(&self, label: &str) -> bool {
        self.wanted.as_ref().is_none_or(|w| w.contains(label))
    }

    async fn apply(&mut self, change: SourceChange) -> Result<(), QueryError> {
        let out = self
            .query
            .process_source_change(change)
            .await
            .map_err(|e| QueryError::Evaluation(one_line(&e.to_string())))?;
        for c in out {
            match c {
                QueryPartEvaluationContext::Adding {
                    after,
                    row_signature,
                } => {
                    self.set(row_signature, Some(row(&after)));
                }
                QueryPartEvaluationContext::Updating {
                    before,
                    after,
                    row_signature,
                } => {
                    let before = row(&before);
                    if self.rows.get(&row_signature) != Some(&before) {
                        self.drop_value(&before);
                    }
                    self.set(row_signature, Some(row(&after)));
                }
                QueryPartEvaluationContext::Removing {
                    before,
                    row_signature,
                } => {
                    if self.rows.contains_key(&row_signature) {
                        self.set(row_signature, None);
                    } else {
                        self.drop_value(&row(&before));
                    }
                }
                QueryPartEvaluationContext::Aggregation {
                    after,
                    row_signature,
                    ..
                } => self.set(row_signature, Some(row(&after))),
                QueryPartEvaluationContext::Noop => {}
            }
        }
        Ok(())
    }

    /// Removes the row equal to `before`: drasi addresses a removal or an
    /// update by the row's signature, which for an aggregate can be
    /// another than the one it was added under.
    fn drop_value(&mut self, before: &Value) {
        let old = self
            .rows
            .iter()
            .find(|(_, v)| *v == before)
            .map(|(k, _)| *k);
        if let Some(k) = old {
            self.set(k, None);
        }
    }

    fn set(&mut self, key: u64, value: Option<Value>) {
        let before = match &value {
            Some(v) => self.rows.insert(key, v.clone()),
            None => self.rows.remove(&key),
        };
        self.touched.entry(key).or_insert(before);
    }

    /// What changed in the result since the last call.
    pub fn take_diff(&mut self) -> Diff {
        let mut diff = Diff::default();
        for (key, before) in std::mem::take(&mut self.touched) {
            match (before, self.rows.get(&key)) {
                (None, Some(now)) => diff.added.push(now.clone()),
                (Some(was), None) => diff.removed.push(was),
                (Some(was), Some(now)) if was != *now => diff.updated.push((was, now.clone())),
                _ => {}
            }
        }
        diff.added.sort_by_cached_key(Value::to_string);
        diff.removed.sort_by_cached_key(Value::to_string);
        diff.updated.sort_by_cached_key(|(_, a)| a.to_string());
        diff
    }

    fn check_size(&self) -> Result<(), QueryError> {
        if self.nodes.len() + self.relations.len() >= self.max_elements {
            return Err(QueryError::TooLarge(self.max_elements));
        }
        Ok(())
    }

    /// Inserts node `id` or replaces its properties.
    pub async fn put_node(
        &mut self,
        id: &str,
        label: &'static str,
        properties: Value,
        at: u64,
    ) -> Result<(), QueryError> {
        if !self.wants(label) {
            return Ok(());
        }
        let element = Element::Node {
            metadata: metadata(id, label, at),
            properties: ElementPropertyMap::from(properties),
        };
        if self.nodes.contains_key(id) {
            self.apply(SourceChange::Update { element }).await
        } else {
            self.check_size()?;
            self.nodes.insert(id.to_string(), label);
            self.apply(SourceChange::Insert { element }).await
        }
    }

    /// Removes node `id` and every relation at either of its ends.
    pub async fn remove_node(&mut self, id: &str, at: u64) -> Result<(), QueryError> {
        let Some(label) = self.nodes.remove(id) else {
            return Ok(());
        };
        for rel in self.ends.remove(id).unwrap_or_default() {
            self.remove_relation(&rel, at).await?;
        }
        self.apply(SourceChange::Delete {
            metadata: metadata(id, label, at),
        })
        .await
    }

    /// Sets relation `id` from `from` to `to` (moving it if it pointed
    /// elsewhere).
    pub async fn put_relation(
        &mut self,
        id: &str,
        label: &'static str,
        from: &str,
        to: &str,
        at: u64,
    ) -> Result<(), QueryError> {
        if !self.wants(label) {
            return Ok(());
        }
        if let Some(r) = self.relations.get(id) {
            if r.from == from && r.to == to {
                return Ok(());
            }
            self.remove_relation(id, at).await?;
        }
        self.check_size()?;
        for end in [from, to] {
            self.ends
                .entry(end.to_string())
                .or_default()
                .insert(id.to_string());
        }
        self.relations.insert(
            id.to_string(),
            Relation {
                label,
                from: from.to_string(),
                to: to.to_string(),
            },
        );
        let element = Element::Relation {
            metadata: metadata(id, label, at),
            properties: ElementPropertyMap::new(),
            in_node: reference(from),
            out_node: reference(to),
        };
        self.apply(SourceChange::Insert { element }).await
    }

    /// Removes relation `id`, if present.
    pub async fn remove_relation(&mut self, id: &str, at: u64) -> Result<(), QueryError> {
        let Some(r) = self.relations.remove(id) else {
            return Ok(());
        };
        for end in [&r.from, &r.to] {
            if let Some(set) = self.ends.get_mut(end) {
                set.remove(id);
                if set.is_empty() {
                    self.ends.remove(end);
                }
            }
        }
        self.apply(SourceChange::Delete {
            metadata: metadata(id, r.label, at),
        })
        .await
    }

    /// Re-evaluates what time-based functions asked to see again by `now`
    /// (Unix ms).
    pub async fn run_due(&mut self, now: u64) -> Result<(), QueryError> {
        let queue = self.query.future_queue();
        loop {
            match queue.peek_due_time().await {
                Ok(Some(due)) if due <= now => {}
                Ok(_) => return Ok(()),
                Err(e) => return Err(QueryError::Evaluation(format!("{e:?}"))),
            }
            let Some(future_ref) = queue
                .pop()
                .await
                .map_err(|e| QueryError::Evaluation(format!("{e:?}")))?
            else {
                return Ok(());
            };
            self.apply(SourceChange::Future { future_ref }).await?;
        }
    }
}

fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    s.chars().take(400).collect()
}
