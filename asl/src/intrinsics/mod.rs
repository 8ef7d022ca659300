//! The `States.*` intrinsic functions: `States.Format('{} {}', $.a, 'b')`, with arguments that
//! are string literals (`\'`, `\\`, `\{`, `\}` escapes), numbers, booleans, null, paths and
//! nested calls. Failures are `States.IntrinsicFailure`.

use base64::Engine;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Number, Value};
use sha2::Digest;

use super::Failure;
use super::paths::{Scope, query};

/// A parsed argument.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Literal(Value),
    /// A string literal, kept with its `\{` `\}` escapes for `States.Format`.
    Text(String),
    Path(String),
    Call(String, Vec<Arg>),
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn fail(&self, what: &str) -> Failure {
        Failure::intrinsic(format!(
            "{what} at position {} of {:?}",
            self.pos, self.text
        ))
    }

    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        }
    }

    fn call(&mut self) -> Result<Arg, Failure> {
        let open = self.text[self.pos..]
            .find('(')
            .ok_or_else(|| self.fail("expected '('"))?
            + self.pos;
        let name = self.text[self.pos..open].trim().to_owned();
        self.pos = open + 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.text[self.pos..].starts_with(')') {
            self.pos += 1;
            return Ok(Arg::Call(name, args));
        }
        loop {
            self.skip_ws();
            args.push(self.arg()?);
            self.skip_ws();
            match self.text[self.pos..].chars().next() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    return Ok(Arg::Call(name, args));
                }
                _ => return Err(self.fail("expected ',' or ')'")),
            }
        }
    }

    fn arg(&mut self) -> Result<Arg, Failure> {
        let rest = &self.text[self.pos..];
        if rest.starts_with("States.") {
            return self.call();
        }
        if let Some(quoted) = rest.strip_prefix('\'') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, '\'')) => out.push('\''),
                        Some((_, '\\')) => out.push('\\'),
                        Some((_, brace @ ('{' | '}'))) => {
                            out.push('\\');
                            out.push(brace);
                        }
                        Some((_, other)) => {
                            out.push('\\');
                            out.push(other);
                        }
                        None => return Err(self.fail("unterminated string")),
                    },
                    '\'' => {
                        self.pos += i + 2;
                        return Ok(Arg::Text(out));
                    }
                    other => out.push(other),
                }
            }
            return Err(self.fail("unterminated string"));
        }
        // A path or a bare literal runs to the next top-level ',' or ')'.
        let mut depth = 0_i32;
        let mut quote = None;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '[' | '(') => depth += 1,
                (None, ']') => depth -= 1,
                (None, ')') if depth > 0 => depth -= 1,
                (None, ',' | ')') if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let token = rest[..end].trim();
        self.pos += end;
        if token.starts_with('$') {
            return Ok(Arg::Path(token.to_owned()));
        }
        serde_json::from_str::<Value>(token)
            .map(Arg::Literal)
            .map_err(|_| self.fail(&format!("unexpected argument {token:?}")))
    }
}

fn unescape_braces(text: &str) -> String {
    text.replace("\\{", "{").replace("\\}", "}")
}

/// Evaluates an intrinsic function call.
pub fn evaluate(expression: &str, input: &Value, scope: Scope<'_>) -> Result<Value, Failure> {
    let mut parser = Parser {
        text: expression,
        pos: 0,
    };
    let call = parser.call()?;
    parser.skip_ws();
    if parser.pos != expression.len() {
        return Err(parser.fail("unexpected text after the call"));
    }
    eval(&call, input, scope)
}

/// Applies an intrinsic function to values (JSONata's Step Functions functions share them:
/// `$partition` is `States.ArrayPartition`, `$hash` is `States.Hash`, ...).
pub fn apply(name: &str, values: Vec<Value>) -> Result<Value, Failure> {
    let call = Arg::Call(
        name.to_owned(),
        values.into_iter().map(Arg::Literal).collect(),
    );
    let variables = Map::new();
    let scope = Scope {
        context: &Value::Null,
        variables: &variables,
    };
    eval(&call, &Value::Null, scope)
}

fn value_of(arg: &Arg, input: &Value, scope: Scope<'_>) -> Result<Value, Failure> {
    Ok(match arg {
        Arg::Literal(value) => value.clone(),
        Arg::Text(text) => Value::String(unescape_braces(text)),
        Arg::Path(path) => query(path, input, scope)?,
        Arg::Call(..) => eval(arg, input, scope)?,
    })
}

fn int(value: &Value, function: &str) -> Result<i64, Failure> {
    value
        .as_i64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0)
                .map(|f| f as i64)
        })
        .ok_or_else(|| Failure::intrinsic(format!("{function}: expected an integer, got {value}")))
}

fn text<'v>(value: &'v Value, function: &str) -> Result<&'v str, Failure> {
    value
        .as_str()
        .ok_or_else(|| Failure::intrinsic(format!("{function}: expected a string, got {value}")))
}

fn array<'v>(value: &'v Value, function: &str) -> Result<&'v Vec<Value>, Failure> {
    value
        .as_array()
        .ok_or_else(|| Failure::intrinsic(format!("{function}: expected an array, got {value}")))
}

fn arity(
    function: &str,
    args: &[Arg],
    range: std::ops::RangeInclusive<usize>,
) -> Result<(), Failure> {
    if range.contains(&args.len()) {
        Ok(())
    } else {
        Err(Failure::intrinsic(format!(
            "{function} takes {range:?} arguments, got {}",
            args.len()
        )))
    }
}

fn eval(call: &Arg, input: &Value, scope: Scope<'_>) -> Result<Value, Failure> {
    let Arg::Call(name, args) = call else {
        return value_of(call, input, scope);
    };
    let name = name.as_str();
    let values = || {
        args.iter()
            .map(|a| value_of(a, input, scope))
            .collect::<Result<Vec<_>, _>>()
    };
    match name {
        "States.Format" => {
            let template = match args.first() {
                Some(Arg::Text(template)) => template.clone(),
                Some(other) => match value_of(other, input, scope)? {
                    Value::String(template) => template,
                    other => {
                        return Err(Failure::intrinsic(format!(
                            "States.Format: the template is a string, got {other}"
                        )));
                    }
                },
                None => return Err(Failure::intrinsic("States.Format: a template is required")),
            };
            let values = args[1..]
                .iter()
                .map(|a| value_of(a, input, scope))
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = String::new();
            let mut rest = template.as_str();
            let mut used = 0;
            while let Some(i) = rest.find(['{', '\\']) {
                out.push_str(&rest[..i]);
                if rest[i..].starts_with('\\') {
                    out.push_str(
                        &rest[i + 1..]
                            .chars()
                            .next()
                            .map(String::from)
                            .unwrap_or_default(),
                    );
                    rest = &rest[i + 1 + rest[i + 1..].chars().next().map_or(0, char::len_utf8)..];
                } else if rest[i..].starts_with("{}") {
                    let value = values.get(used).ok_or_else(|| {
                        Failure::intrinsic("States.Format: more {} than arguments")
                    })?;
                    match value {
                        Value::String(s) => out.push_str(s),
                        other => out.push_str(&other.to_string()),
                    }
                    used += 1;
                    rest = &rest[i + 2..];
                } else {
                    out.push('{');
                    rest = &rest[i + 1..];
                }
            }
            out.push_str(rest);
            if used != values.len() {
                return Err(Failure::intrinsic("States.Format: more arguments than {}"));
            }
            Ok(Value::String(out))
        }
        "States.StringToJson" => {
            arity(name, args, 1..=1)?;
            let values = values()?;
            let source = text(&values[0], name)?;
            if source.trim().is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str(source).map_err(|e| Failure::intrinsic(format!("{name}: {e}")))
        }
        "States.JsonToString" => {
            arity(name, args, 1..=1)?;
            Ok(Value::String(values()?[0].to_string()))
        }
        "States.Array" => Ok(Value::Array(values()?)),
        "States.ArrayPartition" => {
            arity(name, args, 2..=2)?;
            let values = values()?;
            let size = int(&values[1], name)?;
            if size <= 0 {
                return Err(Failure::intrinsic(format!(
                    "{name}: the chunk size must be positive"
                )));
            }
            Ok(Value::Array(
                array(&values[0], name)?
                    .chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        "States.ArrayContains" => {
            arity(name, args, 2..=2)?;
            let values = values()?;
            Ok(Value::Bool(array(&values[0], name)?.contains(&values[1])))
        }
        "States.ArrayRange" => {
            arity(name, args, 3..=3)?;
            let values = values()?;
            let (start, end, step) = (
                int(&values[0], name)?,
                int(&values[1], name)?,
                int(&values[2], name)?,
            );
            if step == 0 {
                return Err(Failure::intrinsic(format!("{name}: the step cannot be 0")));
            }
            let mut out = Vec::new();
            let mut current = start;
            while (step > 0 && current <= end) || (step < 0 && current >= end) {
                out.push(Value::from(current));
                if out.len() > 1000 {
                    return Err(Failure::intrinsic(format!("{name}: more than 1000 items")));
                }
                current += step;
            }
            Ok(Value::Array(out))
        }
        "States.ArrayGetItem" => {
            arity(name, args, 2..=2)?;
            let values = values()?;
            let index = int(&values[1], name)?;
            array(&values[0], name)?
                .get(
                    usize::try_from(index)
                        .map_err(|_| Failure::intrinsic(format!("{name}: negative index")))?,
                )
                .cloned()
                .ok_or_else(|| Failure::intrinsic(format!("{name}: index {index} out of bounds")))
        }
        "States.ArrayLength" => {
            arity(name, args, 1..=1)?;
            Ok(Value::from(array(&values()?[0], name)?.len()))
        }
        "States.ArrayUnique" => {
            arity(name, args, 1..=1)?;
            let mut out: Vec<Value> = Vec::new();
            for item in array(&values()?[0], name)? {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Ok(Value::Array(out))
        }
        "States.Base64Encode" => {
            arity(name, args, 1..=1)?;
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(text(&values()?[0], name)?),
            ))
        }
        "States.Base64Decode" => {
            arity(name, args, 1..=1)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text(&values()?[0], name)?)
                .map_err(|e| Failure::intrinsic(format!("{name}: {e}")))?;
            Ok(Value::String(
                String::from_utf8(bytes).map_err(|e| Failure::intrinsic(format!("{name}: {e}")))?,
            ))
        }
        "States.Hash" => {
            arity(name, args, 2..=2)?;
            let values = values()?;
            let data = match &values[0] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let digest: Vec<u8> = match text(&values[1], name)? {
                "MD5" => md5::Md5::digest(data.as_bytes()).to_vec(),
                "SHA-1" => sha1::Sha1::digest(data.as_bytes()).to_vec(),
                "SHA-256" => sha2::Sha256::digest(data.as_bytes()).to_vec(),
                "SHA-384" => sha2::Sha384::digest(data.as_bytes()).to_vec(),
                "SHA-512" => sha2::Sha512::digest(data.as_bytes()).to_vec(),
                other => {
                    return Err(Failure::intrinsic(format!(
                        "{name}: unknown algorithm {other:?}"
                    )));
                }
            };
            Ok(Value::String(
                digest.iter().map(|b| format!("{b:02x}")).collect(),
            ))
        }
        "States.JsonMerge" => {
            arity(name, args, 3..=3)?;
            let values = values()?;
            if values[2] != Value::Bool(false) {
                return Err(Failure::intrinsic(format!(
                    "{name}: only shallow merges (false) are supported"
                )));
            }
            let (Value::Object(left), Value::Object(right)) = (&values[0], &values[1]) else {
                return Err(Failure::intrinsic(format!(
                    "{name}: both arguments are objects"
                )));
            };
            let mut merged: Map<String, Value> = left.clone();
            merged.extend(right.clone());
            Ok(Value::Object(merged))
        }
        "States.MathRandom" => {
            arity(name, args, 2..=3)?;
            let values = values()?;
            let (start, end) = (int(&values[0], name)?, int(&values[1], name)?);
            if start >= end {
                return Err(Failure::intrinsic(format!(
                    "{name}: the start must be below the end"
                )));
            }
            let value = match values.get(2) {
                Some(seed) => rand_chacha::ChaCha8Rng::seed_from_u64(int(seed, name)? as u64)
                    .random_range(start..end),
                None => rand::rng().random_range(start..end),
            };
            Ok(Value::from(value))
        }
        "States.MathAdd" => {
            arity(name, args, 2..=2)?;
            let values = values()?;
            // Operands are rounded half up to integers, as Step Functions does.
            let round = |value: &Value| -> Result<i64, Failure> {
                value
                    .as_f64()
                    .map(|f| (f + 0.5).floor() as i64)
                    .ok_or_else(|| {
                        Failure::intrinsic(format!("{name}: expected a number, got {value}"))
                    })
            };
            let sum = round(&values[0])?
                .checked_add(round(&values[1])?)
                .ok_or_else(|| Failure::intrinsic(format!("{name}: overflow")))?;
            Ok(Value::Number(Number::from(sum)))
        }
        "States.StringSplit" => {
            arity(name, args, 2..=2)?;
            let values = values()?;
            let delimiters: Vec<char> = text(&values[1], name)?.chars().collect();
            Ok(Value::Array(
                text(&values[0], name)?
                    .split(|c| delimiters.contains(&c))
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ))
        }
        "States.UUID" => {
            arity(name, args, 0..=0)?;
            Ok(Value::String(uuid::Uuid::new_v4().to_string()))
        }
        other => Err(Failure::intrinsic(format!(
            "unknown intrinsic function {other}"
        ))),
    }
}

#[cfg(test)]
mod tests;
