//! The byte scanner of the direct decoder: a cursor over one record, JSON's strings (eight bytes
//! tested at a time), keys matched as one integer compare, numbers checked against JSON's grammar
//! with an exact fast path to f64, and string unescaping.

/// A byte cursor over one record.
pub(super) struct Parser<'a> {
    pub(super) text: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Parser<'a> {
    #[inline]
    pub(super) fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.text.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-blank byte, not consumed.
    #[inline]
    pub(super) fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.text.get(self.pos).copied()
    }

    #[inline]
    pub(super) fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    #[inline]
    pub(super) fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.text.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// A string's raw bytes (between the quotes) and whether it holds escapes; the cursor is on
    /// the opening quote. Eight bytes are tested at a time for a quote, a backslash or a control
    /// character (which JSON forbids inside strings).
    #[inline]
    pub(super) fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let text = self.text;
        let start = self.pos + 1;
        let mut at = start;
        let mut escaped = false;
        loop {
            let found = match text.get(at..at + 8) {
                Some(word) => {
                    let mask = string_specials(u64::from_le_bytes(word.try_into().ok()?));
                    if mask == 0 {
                        at += 8;
                        continue;
                    }
                    at + (mask.trailing_zeros() / 8) as usize
                }
                None => {
                    at + text
                        .get(at..)?
                        .iter()
                        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?
                }
            };
            match text[found] {
                b'"' => {
                    self.pos = found + 1;
                    return Some((&text[start..found], escaped));
                }
                b'\\' => {
                    escaped = true;
                    at = found + 2;
                }
                _ => return None,
            }
        }
    }

    /// After a member or an element: steps over a comma (`Some(false)`) or the closing `close`
    /// (`Some(true)`); anything else is malformed.
    #[inline]
    pub(super) fn separator(&mut self, close: u8) -> Option<bool> {
        let byte = self.peek()?;
        self.pos += 1;
        match byte {
            b',' => Some(false),
            _ if byte == close => Some(true),
            _ => None,
        }
    }

    /// Whether the text at the cursor is `key` (a field's name in quotes); if so, steps over it.
    #[inline]
    pub(super) fn key(&mut self, key: &Key) -> bool {
        let matched = match (&key.head, self.text.get(self.pos..self.pos + 16)) {
            (Some((head, mask)), Some(window)) => {
                let window = u128::from_le_bytes(window.try_into().expect("16 bytes"));
                window & mask == *head
            }
            _ => self.text[self.pos..].starts_with(&key.quoted),
        };
        if matched {
            self.pos += key.quoted.len();
        }
        matched
    }

    /// A number token, checked against JSON's grammar; the cursor is on its first byte.
    #[inline]
    pub(super) fn number(&mut self) -> Option<Number<'a>> {
        let start = self.pos;
        let text = self.text;
        let mut at = start;
        let negative = text.get(at) == Some(&b'-');
        if negative {
            at += 1;
        }
        let digits_start = at;
        let mut mantissa: u64 = 0;
        let mut digits = 0_usize;
        while let Some(&b) = text.get(at).filter(|b| b.is_ascii_digit()) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
            digits += 1;
            at += 1;
        }
        let int_digits = at - digits_start;
        if int_digits == 0 || (int_digits > 1 && text[digits_start] == b'0') {
            return None;
        }
        let mut fraction_digits = 0_usize;
        if text.get(at) == Some(&b'.') {
            at += 1;
            while let Some(&b) = text.get(at).filter(|b| b.is_ascii_digit()) {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
                digits += 1;
                fraction_digits += 1;
                at += 1;
            }
            if fraction_digits == 0 {
                return None;
            }
        }
        let mut exponent: Option<i64> = None;
        if let Some(b'e' | b'E') = text.get(at) {
            at += 1;
            let sign = match text.get(at) {
                Some(b'-') => {
                    at += 1;
                    -1
                }
                Some(b'+') => {
                    at += 1;
                    1
                }
                _ => 1,
            };
            let exp_start = at;
            let mut value: i64 = 0;
            while let Some(&b) = text.get(at).filter(|b| b.is_ascii_digit()) {
                value = value.saturating_mul(10).saturating_add(i64::from(b - b'0'));
                at += 1;
            }
            if at == exp_start {
                return None;
            }
            exponent = Some(sign * value);
        }
        self.pos = at;
        Some(Number {
            text: &text[start..at],
            negative,
            mantissa,
            digits,
            fraction_digits,
            exponent,
        })
    }
}

/// The bytes of a little-endian word that are a quote, a backslash or below 0x20, as their high
/// bits. Bits above the lowest may be false alarms (borrows); the lowest is always right.
#[inline]
fn string_specials(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
        | (word.wrapping_sub(ONES * 0x20) & !word & HIGH)
}

/// A field's name as it appears in a record: in quotes, and (when it fits) as the first 16 bytes
/// with a mask, compared as one integer.
pub(super) struct Key {
    quoted: Box<[u8]>,
    head: Option<(u128, u128)>,
}

impl Key {
    /// `None` for a name that JSON must escape: such keys take the slow path.
    pub(super) fn new(name: &str) -> Option<Self> {
        if name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            return None;
        }
        let quoted: Box<[u8]> = format!("\"{name}\"").into_bytes().into();
        let head = (quoted.len() <= 16).then(|| {
            let mut bytes = [0_u8; 16];
            bytes[..quoted.len()].copy_from_slice(&quoted);
            let mask = if quoted.len() == 16 {
                u128::MAX
            } else {
                (1_u128 << (quoted.len() * 8)) - 1
            };
            (u128::from_le_bytes(bytes), mask)
        });
        Some(Self { quoted, head })
    }
}

/// A JSON number as written, with what the fast float path needs.
pub(super) struct Number<'a> {
    pub(super) text: &'a [u8],
    negative: bool,
    mantissa: u64,
    digits: usize,
    fraction_digits: usize,
    exponent: Option<i64>,
}

impl Number<'_> {
    /// The value of an integer literal (no fraction, no exponent) that fits an i64.
    pub(super) fn as_i64(&self) -> Option<i64> {
        if self.fraction_digits > 0 || self.exponent.is_some() || self.digits > 19 {
            return None;
        }
        if self.negative {
            0_i64.checked_sub_unsigned(self.mantissa)
        } else {
            i64::try_from(self.mantissa).ok()
        }
    }

    /// The correctly rounded f64: exact small mantissas scaled by an exact power of ten take
    /// one IEEE operation (Clinger's fast path); the rest go through the standard library's
    /// parser, which rounds correctly too, so the bits equal any correct parser's.
    pub(super) fn as_f64(&self) -> Option<f64> {
        const POWERS: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ];
        let scale = self.exponent.unwrap_or(0) - self.fraction_digits as i64;
        if self.digits <= 15 && self.mantissa < (1 << 53) && (-22..=22).contains(&scale) {
            let magnitude = self.mantissa as f64;
            let value = if scale < 0 {
                magnitude / POWERS[(-scale) as usize]
            } else {
                magnitude * POWERS[scale as usize]
            };
            return Some(if self.negative { -value } else { value });
        }
        std::str::from_utf8(self.text).ok()?.parse().ok()
    }
}

/// Appends the unescaped form of a JSON string's raw bytes.
pub(super) fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut at = 0;
    while at < raw.len() {
        let Some(offset) = memchr::memchr(b'\\', &raw[at..]) else {
            out.extend_from_slice(&raw[at..]);
            break;
        };
        out.extend_from_slice(&raw[at..at + offset]);
        at += offset + 1;
        let byte = match *raw.get(at)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = hex4(raw.get(at + 1..at + 5)?)?;
                at += 5;
                let code = if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate must be followed by an escaped low one.
                    if raw.get(at..at + 2)? != b"\\u" {
                        return None;
                    }
                    let low = hex4(raw.get(at + 2..at + 6)?)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    at += 6;
                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    unit
                };
                let ch = char::from_u32(code)?;
                out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            _ => return None,
        };
        out.push(byte);
        at += 1;
    }
    Some(())
}

fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0_u32, |acc, &d| {
        Some(acc * 16 + char::from(d).to_digit(16)?)
    })
}
