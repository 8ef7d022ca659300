//! Partition pruning: the top-level `AND`ed conditions of a query's `WHERE` that compare a
//! table's partition key with constants (`year = 2024`, `month IN (5, 6)`, `day BETWEEN 1 AND
//! 7`, `hour >= 12`) decide which partitions are read. Anything else (an `OR`, a function, a
//! column of the data) is left to the SQL engine, which sees every row it would have seen: a
//! condition only ever removes partitions whose values it rules out.

use sqlparser::ast::{BinaryOperator, Expr, SetExpr, Statement, UnaryOperator, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// A condition on one column.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The table it names (`t.year`), if any.
    pub table: Option<String>,
    pub column: String,
    pub test: Test,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Compare(BinaryOperator, String),
    In(Vec<String>),
    Between(String, String),
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.test {
            Test::Compare(op, value) => write!(f, "{} {op} {value}", self.column),
            Test::In(values) => write!(f, "{} IN ({})", self.column, values.join(", ")),
            Test::Between(low, high) => {
                write!(f, "{} BETWEEN {low} AND {high}", self.column)
            }
        }
    }
}

/// The pruning conditions of a query (none where it is no plain `SELECT`).
pub fn conditions(sql: &str) -> Vec<Condition> {
    let Ok(statements) = Parser::parse_sql(&GenericDialect {}, sql) else {
        return Vec::new();
    };
    let [Statement::Query(query)] = statements.as_slice() else {
        return Vec::new();
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(selection) = &select.selection {
        conjuncts(selection, &mut out);
    }
    out
}

fn conjuncts(expr: &Expr, out: &mut Vec<Condition>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.extend(condition(other)),
    }
}

fn column(expr: &Expr) -> Option<(Option<String>, String)> {
    match expr {
        Expr::Identifier(ident) => Some((None, ident.value.clone())),
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            Some((Some(parts[0].value.clone()), parts[1].value.clone()))
        }
        _ => None,
    }
}

fn constant(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(n, _) => Some(n.to_string()),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => constant(expr).map(|n| format!("-{n}")),
        Expr::Nested(inner) => constant(inner),
        _ => None,
    }
}

fn flipped(op: &BinaryOperator) -> Option<BinaryOperator> {
    Some(match op {
        BinaryOperator::Eq => BinaryOperator::Eq,
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        BinaryOperator::Gt => BinaryOperator::Lt,
        BinaryOperator::GtEq => BinaryOperator::LtEq,
        _ => return None,
    })
}

fn condition(expr: &Expr) -> Option<Condition> {
    let make = |(table, column): (Option<String>, String), test| Condition {
        table,
        column,
        test,
    };
    match expr {
        Expr::BinaryOp { left, op, right } => {
            flipped(op)?;
            match (column(left), constant(right), column(right), constant(left)) {
                (Some(col), Some(value), _, _) => Some(make(col, Test::Compare(op.clone(), value))),
                (_, _, Some(col), Some(value)) => {
                    Some(make(col, Test::Compare(flipped(op)?, value)))
                }
                _ => None,
            }
        }
        Expr::InList {
            expr,
            list,
            negated: false,
        } => {
            let values = list.iter().map(constant).collect::<Option<Vec<_>>>()?;
            Some(make(column(expr)?, Test::In(values)))
        }
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } => Some(make(
            column(expr)?,
            Test::Between(constant(low)?, constant(high)?),
        )),
        _ => None,
    }
}

/// Compares a partition value with a constant: as numbers where both are, else as text.
fn order(value: &str, constant: &str) -> std::cmp::Ordering {
    match (value.parse::<f64>(), constant.parse::<f64>()) {
        (Ok(a), Ok(b)) => a.total_cmp(&b),
        _ => value.cmp(constant),
    }
}

impl Condition {
    /// Whether a partition whose value of this column is `value` may hold matching rows.
    pub fn admits(&self, value: &str) -> bool {
        use std::cmp::Ordering::*;
        match &self.test {
            Test::Compare(op, constant) => {
                let o = order(value, constant);
                match op {
                    BinaryOperator::Eq => o == Equal,
                    BinaryOperator::Lt => o == Less,
                    BinaryOperator::LtEq => o != Greater,
                    BinaryOperator::Gt => o == Greater,
                    BinaryOperator::GtEq => o != Less,
                    _ => true,
                }
            }
            Test::In(values) => values.iter().any(|c| order(value, c) == Equal),
            Test::Between(low, high) => order(value, low) != Less && order(value, high) != Greater,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(sql: &str) -> Vec<String> {
        conditions(sql).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn only_top_level_conjuncts_on_constants_prune() {
        assert_eq!(
            shown(
                "SELECT * FROM t WHERE year = 2024 AND (month IN (5, 6)) AND pm25 > 3 AND 12 <= day"
            ),
            ["year = 2024", "month IN (5, 6)", "pm25 > 3", "day >= 12"]
        );
        assert!(shown("SELECT * FROM t WHERE year = 2024 OR month = 5").is_empty());
        assert!(shown("SELECT * FROM t WHERE year + 1 = 2025").is_empty());
        assert_eq!(
            shown("SELECT * FROM t WHERE t.day BETWEEN '01' AND '07'"),
            ["day BETWEEN 01 AND 07"]
        );
        assert!(shown("not sql").is_empty());
    }

    #[test]
    fn partitions_are_admitted_by_value() {
        let only = |sql: &str| conditions(sql).remove(0);
        assert!(only("SELECT 1 FROM t WHERE month = 5").admits("05"));
        assert!(!only("SELECT 1 FROM t WHERE month = 5").admits("06"));
        assert!(only("SELECT 1 FROM t WHERE month IN (4, 6)").admits("06"));
        assert!(only("SELECT 1 FROM t WHERE day BETWEEN 1 AND 7").admits("07"));
        assert!(!only("SELECT 1 FROM t WHERE day BETWEEN 1 AND 7").admits("08"));
        assert!(only("SELECT 1 FROM t WHERE device = 'a'").admits("a"));
    }
}
