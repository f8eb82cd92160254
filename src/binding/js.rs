//! Conversions between JavaScript values and core types, and the one place
//! where a [`CoreError`] becomes a JavaScript `Error`.

use crate::core::error::CoreError;
use napi::bindgen_prelude::{
    Buffer, FromNapiValue, Function, FunctionRef, JsObjectValue, Object, PromiseRaw, ToNapiValue,
    Uint32Array, Unknown,
};
use napi::{sys, Env, JsValue, Status, ValueType};
use std::future::Future;

pub type CoreResult<T> = Result<T, CoreError>;

/// Builds the JavaScript `Error` for a core error: `message`, a stable `code`,
/// `retriable`, `fatal` (the client can no longer be used) and, for librdkafka
/// errors, `librdkafkaCode` and `librdkafkaName`.
pub fn js_error(env: &Env, error: CoreError) -> napi::Error {
    let error = quoting_pending_exception(env, error);
    let build = || -> napi::Result<napi::Error> {
        let mut object =
            env.create_error(napi::Error::new(Status::GenericFailure, error.to_string()))?;
        object.set_named_property("code", error.code())?;
        if let Some(code) = error.librdkafka_code() {
            object.set_named_property("librdkafkaCode", code)?;
        }
        if let Some(name) = error.librdkafka_name() {
            object.set_named_property("librdkafkaName", name)?;
        }
        object.set_named_property("retriable", error.is_retriable())?;
        object.set_named_property("fatal", error.is_fatal())?;
        Ok(napi::Error::from(object.to_unknown()))
    };
    // If even building the error fails (the environment is shutting down),
    // fall back to napi's plain error, still carrying the message.
    build().unwrap_or_else(|_| {
        napi::Error::new(Status::GenericFailure, format!("{}: {error}", error.code()))
    })
}

/// Runs a core future on the runtime and settles a promise with its result,
/// converting the value (or the error) on the JavaScript thread.
pub fn promise<'env, T, V, F, C>(
    env: &'env Env,
    future: F,
    convert: C,
) -> napi::Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    F: Future<Output = CoreResult<T>> + Send + 'static,
    C: FnOnce(&Env, T) -> napi::Result<V> + 'static,
{
    env.spawn_future_with_callback(
        async move { Ok(future.await) },
        move |env, result| match result {
            Ok(value) => convert(env, value),
            Err(error) => Err(js_error(env, error)),
        },
    )
}

/// A rejected promise for an error found before any work started, so async
/// methods never throw synchronously.
pub fn rejected<'env, V: ToNapiValue + Send + 'static>(
    env: &'env Env,
    error: CoreError,
) -> napi::Result<PromiseRaw<'env, V>> {
    let error = quoting_pending_exception(env, error);
    promise(
        env,
        async move { Err::<(), _>(error) },
        |_, ()| -> napi::Result<V> { Err(napi::Error::new(Status::GenericFailure, "unreachable")) },
    )
}

/// An argument whose getter, proxy trap or `toJSON` threw leaves that
/// exception pending, and every later N-API call would fail on it: it is
/// cleared here and quoted in the coded error instead.
fn quoting_pending_exception(env: &Env, error: CoreError) -> CoreError {
    let Some(thrown) = take_pending_exception(env.raw()) else {
        return error;
    };
    let detail = format!("(reading it threw: {thrown})");
    match error {
        CoreError::InvalidArgument(message) => {
            CoreError::InvalidArgument(format!("{message} {detail}"))
        }
        CoreError::InvalidConfig { key, reason } => CoreError::InvalidConfig {
            key,
            reason: format!("{reason} {detail}"),
        },
        // The failure came from the argument, whatever it was reported as.
        other => CoreError::InvalidArgument(format!("{other} {detail}")),
    }
}

fn take_pending_exception(env: sys::napi_env) -> Option<String> {
    if !exception_pending(env) {
        return None;
    }
    Some(clear_exception(env).map_or_else(
        || "an exception".to_string(),
        |exception| describe_thrown(env, exception),
    ))
}

fn exception_pending(env: sys::napi_env) -> bool {
    let mut pending = false;
    // SAFETY: on the JavaScript thread of `env`.
    let status = unsafe { sys::napi_is_exception_pending(env, &mut pending) };
    status == sys::Status::napi_ok && pending
}

/// The pending exception, now cleared (`undefined` when none was pending).
fn clear_exception(env: sys::napi_env) -> Option<sys::napi_value> {
    let mut exception = std::ptr::null_mut();
    // SAFETY: on the JavaScript thread of `env`.
    let status = unsafe { sys::napi_get_and_clear_last_exception(env, &mut exception) };
    (status == sys::Status::napi_ok).then_some(exception)
}

/// `error.message`, or the value as a string; hostile values that throw
/// again are not shown.
fn describe_thrown(env: sys::napi_env, thrown: sys::napi_value) -> String {
    const UNSHOWABLE: &str = "a value that cannot be shown";
    let read = || -> Option<String> {
        let mut kind = sys::ValueType::napi_undefined;
        let mut text = std::ptr::null_mut();
        // SAFETY: on the JavaScript thread, with values of `env`; a failed
        // call (a throwing getter or `toString`) leaves `text` unset.
        unsafe {
            if sys::napi_typeof(env, thrown, &mut kind) != sys::Status::napi_ok {
                return None;
            }
            let mut source = thrown;
            if kind == sys::ValueType::napi_object {
                let mut message = std::ptr::null_mut();
                let mut message_kind = sys::ValueType::napi_undefined;
                if sys::napi_get_named_property(env, thrown, c"message".as_ptr(), &mut message)
                    == sys::Status::napi_ok
                    && sys::napi_typeof(env, message, &mut message_kind) == sys::Status::napi_ok
                    && message_kind == sys::ValueType::napi_string
                {
                    source = message;
                }
            }
            if sys::napi_coerce_to_string(env, source, &mut text) != sys::Status::napi_ok {
                return None;
            }
            let value = Unknown::from_raw_unchecked(env, text);
            string_unchecked(&value).ok()
        }
    };
    let shown = read();
    // A getter or `toString` that threw in turn: cleared as well.
    let _ = clear_exception(env);
    match shown {
        Some(text) if text.chars().count() > 200 => {
            format!("{}…", text.chars().take(200).collect::<String>())
        }
        Some(text) => text,
        None => UNSHOWABLE.to_string(),
    }
}

/// A read that failed; when a getter or trap threw, the exception itself is
/// quoted (see `quoting_pending_exception`) instead of N-API's status text.
pub fn unreadable(object: &Object<'_>, what: String, error: &napi::Error) -> CoreError {
    if exception_pending(object.value().env) {
        invalid(format!("{what} could not be read"))
    } else {
        invalid(format!("{what} could not be read: {}", error.reason))
    }
}

pub fn invalid(message: impl Into<String>) -> CoreError {
    CoreError::invalid_arg(message)
}

/// A readable name for a value's type, for error messages.
pub fn type_name(value: &Unknown<'_>) -> &'static str {
    match value.get_type() {
        Ok(ValueType::Undefined) => "undefined",
        Ok(ValueType::Null) => "null",
        Ok(ValueType::Boolean) => "boolean",
        Ok(ValueType::Number) => "number",
        Ok(ValueType::String) => "string",
        Ok(ValueType::Symbol) => "symbol",
        Ok(ValueType::Object) => {
            if value.is_array().unwrap_or(false) {
                "array"
            } else if value.is_buffer().unwrap_or(false) {
                "Buffer"
            } else {
                "object"
            }
        }
        Ok(ValueType::Function) => "function",
        Ok(ValueType::External) => "external",
        Ok(ValueType::BigInt) => "bigint",
        _ => "unknown",
    }
}

pub fn is_nullish(value: &Unknown<'_>) -> bool {
    matches!(value.get_type(), Ok(ValueType::Undefined | ValueType::Null))
}

pub fn as_option<'a>(value: Option<Unknown<'a>>) -> Option<Unknown<'a>> {
    value.filter(|value| !is_nullish(value))
}

pub fn string(value: &Unknown<'_>, what: &str) -> CoreResult<String> {
    if !matches!(value.get_type(), Ok(ValueType::String)) {
        return Err(invalid(format!(
            "{what} must be a string (got {})",
            type_name(value)
        )));
    }
    string_unchecked(value).map_err(|error| invalid(format!("{what}: {}", error.reason)))
}

/// A string's UTF-8 bytes in one pass: V8's UTF-16 length is known at once,
/// and 3 bytes per UTF-16 unit always suffice, so there is no measuring pass
/// (`String::from_napi_value` walks the string twice).
fn string_unchecked(value: &Unknown<'_>) -> napi::Result<String> {
    let bytes = utf8_unchecked(value)?;
    // V8 writes well-formed UTF-8 (lone surrogates become U+FFFD); checked
    // anyway for the short strings (names, ids) that need a `String`.
    String::from_utf8(bytes).map_err(|error| napi::Error::from_reason(error.to_string()))
}

/// A string's UTF-8 bytes, for payloads and keys, which stay bytes.
fn utf8_unchecked(value: &Unknown<'_>) -> napi::Result<Vec<u8>> {
    let env = value.value().env;
    let mut units = 0usize;
    // SAFETY: `value` is a string of this environment (checked by the caller);
    // a null buffer asks only for the length.
    napi::check_status!(unsafe {
        napi::sys::napi_get_value_string_utf16(
            env,
            value.raw(),
            std::ptr::null_mut(),
            0,
            &mut units,
        )
    })?;
    let capacity = units * 3 + 1;
    let mut bytes: Vec<u8> = Vec::with_capacity(capacity);
    let mut written = 0usize;
    // SAFETY: the buffer has `capacity` bytes; V8 writes at most `capacity - 1`
    // bytes plus a terminating NUL and reports how many it wrote (without the
    // NUL), never splitting a character.
    napi::check_status!(unsafe {
        napi::sys::napi_get_value_string_utf8(
            env,
            value.raw(),
            bytes.as_mut_ptr().cast(),
            capacity,
            &mut written,
        )
    })?;
    // SAFETY: V8 initialised the first `written` bytes.
    unsafe { bytes.set_len(written) };
    Ok(bytes)
}

/// An identifier: a non-empty string, or a finite integer rendered in decimal.
pub fn identifier(value: &Unknown<'_>, what: &str) -> CoreResult<String> {
    match value.get_type() {
        Ok(ValueType::String) => string(value, what),
        Ok(ValueType::Number) => {
            let number = number(value, what)?;
            if number.fract() != 0.0 || number.abs() > 9_007_199_254_740_991.0 {
                return Err(invalid(format!(
                    "{what} must be a string or a safe integer (got {number})"
                )));
            }
            Ok(format!("{}", number as i64))
        }
        _ => Err(invalid(format!(
            "{what} must be a string (got {})",
            type_name(value)
        ))),
    }
}

pub fn number(value: &Unknown<'_>, what: &str) -> CoreResult<f64> {
    if !matches!(value.get_type(), Ok(ValueType::Number)) {
        return Err(invalid(format!(
            "{what} must be a number (got {})",
            type_name(value)
        )));
    }
    // SAFETY: the value was just checked to be a number of this environment.
    let number = unsafe { f64::from_napi_value(value.value().env, value.raw()) }
        .map_err(|error| invalid(format!("{what}: {}", error.reason)))?;
    if !number.is_finite() {
        return Err(invalid(format!(
            "{what} must be a finite number (got {number})"
        )));
    }
    Ok(number)
}

/// An integer within `[min, max]`, given as a number.
pub fn integer(value: &Unknown<'_>, what: &str, min: i64, max: i64) -> CoreResult<i64> {
    let number = number(value, what)?;
    if number.fract() != 0.0 || number < min as f64 || number > max as f64 {
        return Err(invalid(format!(
            "{what} must be an integer between {min} and {max} (got {number})"
        )));
    }
    Ok(number as i64)
}

pub fn boolean(value: &Unknown<'_>, what: &str) -> CoreResult<bool> {
    if !matches!(value.get_type(), Ok(ValueType::Boolean)) {
        return Err(invalid(format!(
            "{what} must be a boolean (got {})",
            type_name(value)
        )));
    }
    // SAFETY: the value was just checked to be a boolean of this environment.
    unsafe { bool::from_napi_value(value.value().env, value.raw()) }
        .map_err(|error| invalid(format!("{what}: {}", error.reason)))
}

/// A plain object (not an array, not a Buffer, not null).
pub fn object<'env>(value: &Unknown<'env>, what: &str) -> CoreResult<Object<'env>> {
    if !matches!(value.get_type(), Ok(ValueType::Object))
        || value.is_array().unwrap_or(false)
        || value.is_buffer().unwrap_or(false)
    {
        return Err(invalid(format!(
            "{what} must be an object (got {})",
            type_name(value)
        )));
    }
    // SAFETY: the value was just checked to be an object of this environment.
    unsafe { Object::from_napi_value(value.value().env, value.raw()) }
        .map_err(|error| invalid(format!("{what}: {}", error.reason)))
}

/// A named property, `None` when absent, `undefined` or `null`.
pub fn property<'env>(
    object: &Object<'env>,
    name: &str,
    what: &str,
) -> CoreResult<Option<Unknown<'env>>> {
    let value: Unknown<'env> = object
        .get_named_property(name)
        .map_err(|error| unreadable(object, format!("{what}.{name}"), &error))?;
    Ok(as_option(Some(value)))
}

/// Own enumerable property names of an object.
pub fn keys(object: &Object<'_>, what: &str) -> CoreResult<Vec<String>> {
    let names =
        Object::keys(object).map_err(|error| unreadable(object, format!("{what} keys"), &error))?;
    Ok(names)
}

pub fn array<'env>(value: &Unknown<'env>, what: &str) -> CoreResult<Vec<Unknown<'env>>> {
    if !value.is_array().unwrap_or(false) {
        return Err(invalid(format!(
            "{what} must be an array (got {})",
            type_name(value)
        )));
    }
    // SAFETY: the value was just checked to be an array of this environment.
    let array = unsafe { Object::from_napi_value(value.value().env, value.raw()) }
        .map_err(|error| invalid(format!("{what}: {}", error.reason)))?;
    let length: u32 = array
        .get_array_length()
        .map_err(|error| invalid(format!("{what}: {}", error.reason)))?;
    (0..length)
        .map(|index| {
            array
                .get_element::<Unknown<'env>>(index)
                .map_err(|error| invalid(format!("{what}[{index}]: {}", error.reason)))
        })
        .collect()
}

/// Bytes of a string (UTF-8) or a Buffer.
pub fn bytes(value: &Unknown<'_>, what: &str) -> CoreResult<Vec<u8>> {
    match value.get_type() {
        Ok(ValueType::String) => {
            utf8_unchecked(value).map_err(|error| invalid(format!("{what}: {}", error.reason)))
        }
        Ok(ValueType::Object) if value.is_buffer().unwrap_or(false) => {
            // SAFETY: the value was just checked to be a Buffer of this environment.
            let buffer = unsafe { Buffer::from_napi_value(value.value().env, value.raw()) }
                .map_err(|error| invalid(format!("{what}: {}", error.reason)))?;
            Ok(buffer.to_vec())
        }
        _ => Err(invalid(format!(
            "{what} must be a string or a Buffer (got {})",
            type_name(value)
        ))),
    }
}

/// A message payload: a string or Buffer as is, anything else as JSON.
pub fn payload(env: &Env, value: &Unknown<'_>, what: &str) -> CoreResult<Vec<u8>> {
    match value.get_type() {
        Ok(ValueType::String) => bytes(value, what),
        Ok(ValueType::Object) if value.is_buffer().unwrap_or(false) => bytes(value, what),
        _ => json(env, value, what).map(String::into_bytes),
    }
}

/// `JSON.stringify(value)`, with its failures (cycles, BigInt, values with no
/// JSON form) reported as invalid arguments rather than thrown.
pub fn json(env: &Env, value: &Unknown<'_>, what: &str) -> CoreResult<String> {
    let stringify = || -> napi::Result<Unknown<'_>> {
        let global = env.get_global()?;
        let json: Object<'_> = global.get_named_property("JSON")?;
        let stringify: Function<'_, Unknown<'_>, Unknown<'_>> =
            json.get_named_property("stringify")?;
        stringify.call(*value)
    };
    let encoded = stringify().map_err(|error| {
        invalid(format!(
            "{what} cannot be serialised to JSON: {}",
            error.reason
        ))
    })?;
    if !matches!(encoded.get_type(), Ok(ValueType::String)) {
        return Err(invalid(format!(
            "{what} has no JSON representation (got {})",
            type_name(value)
        )));
    }
    string(&encoded, what)
}

/// Reads an optional property and converts it with `convert`.
pub fn optional<'env, T>(
    object: &Object<'env>,
    name: &str,
    what: &str,
    convert: impl FnOnce(&Unknown<'env>, &str) -> CoreResult<T>,
) -> CoreResult<Option<T>> {
    match property(object, name, what)? {
        Some(value) => convert(&value, &format!("{what}.{name}")).map(Some),
        None => Ok(None),
    }
}

/// [`reject_unknown_keys`] for the hot path: when the object has no more
/// keys than the `present` known properties just read, none can be unknown,
/// and the keys are only counted, not converted one by one.
pub fn reject_unknown_keys_beyond(
    object: &Object<'_>,
    what: &str,
    known: &[&str],
    present: usize,
) -> CoreResult<()> {
    let count = object
        .get_property_names()
        .and_then(|names| names.get_array_length())
        .map_err(|error| unreadable(object, format!("{what} keys"), &error))?;
    if count as usize <= present {
        return Ok(());
    }
    reject_unknown_keys(object, what, known)
}

/// Rejects properties the API does not know, so a typo does not pass silently.
pub fn reject_unknown_keys(object: &Object<'_>, what: &str, known: &[&str]) -> CoreResult<()> {
    for key in keys(object, what)? {
        if !known.contains(&key.as_str()) {
            return Err(invalid(format!(
                "{what} has an unknown option `{key}` (known: {})",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// Property names read on every call of a hot path, created once as
/// JavaScript literals: V8 interns literals, so a lookup neither creates nor
/// hashes a string. (A `&str` lookup allocates a C string, creates a V8
/// string and interns it, per property, per message.) Node-API before
/// version 10 references only objects, so the array of literals is kept.
pub struct InternedKeys {
    env: napi::sys::napi_env,
    literals: napi::sys::napi_ref,
    count: usize,
}

impl InternedKeys {
    /// `names` must be plain identifiers.
    pub fn new(env: &Env, names: &[&str]) -> napi::Result<Self> {
        let source = format!(
            "[{}]",
            names
                .iter()
                .map(|name| format!("'{name}'"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let literals: Object<'_> = env.run_script(source)?;
        let mut reference = std::ptr::null_mut();
        // SAFETY: on the JavaScript thread, with an object of this environment.
        napi::check_status!(unsafe {
            napi::sys::napi_create_reference(env.raw(), literals.raw(), 1, &mut reference)
        })?;
        Ok(InternedKeys {
            env: env.raw(),
            literals: reference,
            count: names.len(),
        })
    }

    /// The keys as values of the current call (valid until it returns).
    pub fn in_scope(&self) -> napi::Result<KeysInScope> {
        let mut literals = std::ptr::null_mut();
        // SAFETY: on the JavaScript thread of the environment the reference
        // was made in (a class instance never leaves it).
        napi::check_status!(unsafe {
            napi::sys::napi_get_reference_value(self.env, self.literals, &mut literals)
        })?;
        let mut keys = Vec::with_capacity(self.count);
        for index in 0..self.count {
            let mut key = std::ptr::null_mut();
            // SAFETY: as above; `literals` is the array made in `new`.
            napi::check_status!(unsafe {
                napi::sys::napi_get_element(self.env, literals, index as u32, &mut key)
            })?;
            keys.push(key);
        }
        Ok(KeysInScope { keys })
    }
}

impl Drop for InternedKeys {
    fn drop(&mut self) {
        // SAFETY: dropped with its owner, a class instance, whose finalizer
        // runs on the JavaScript thread.
        unsafe {
            napi::sys::napi_delete_reference(self.env, self.literals);
        }
    }
}

/// [`InternedKeys`] within one call.
pub struct KeysInScope {
    keys: Vec<napi::sys::napi_value>,
}

impl KeysInScope {
    /// `object[names[index]]`.
    pub fn get<'env>(&self, object: &Object<'env>, index: usize) -> napi::Result<Unknown<'env>> {
        let env = object.value().env;
        let mut value = std::ptr::null_mut();
        // SAFETY: on the JavaScript thread, within the call the keys belong to.
        unsafe {
            napi::check_status!(napi::sys::napi_get_property(
                env,
                object.raw(),
                self.keys[index],
                &mut value
            ))?;
            Unknown::from_napi_value(env, value)
        }
    }
}

/// For `for…in` over each element of an array, in one call: how many keys
/// `napi_get_property_names` would list (enumerable string keys, inherited
/// ones included), or [`KeyCounter::UNREADABLE`] where the element is not an
/// object or enumerating it threw. Asking Node-API for each message's keys
/// was an eighth of a batch send's time on the JavaScript thread.
const COUNT_KEYS: &str = r#"(function countKeys(items) {
  'use strict';
  const counts = new Uint32Array(items.length);
  for (let i = 0; i < counts.length; i++) {
    let count = 0;
    try {
      const item = items[i];
      if (item === null || typeof item !== 'object') count = 0xffffffff;
      else for (const key in item) count++;
    } catch {
      count = 0xffffffff;
    }
    counts[i] = count;
  }
  return counts;
})"#;

/// The key counts of a batch's messages, so that only a message with more
/// keys than it has known ones is enumerated (to name the unknown key).
pub struct KeyCounter {
    function: FunctionRef<Unknown<'static>, Uint32Array>,
}

impl KeyCounter {
    /// The count of an element that could not be counted.
    pub const UNREADABLE: u32 = u32::MAX;

    pub fn new(env: &Env) -> napi::Result<Self> {
        let function: Function<'_, Unknown<'static>, Uint32Array> = env.run_script(COUNT_KEYS)?;
        Ok(KeyCounter {
            function: function.create_ref()?,
        })
    }

    /// Each element's count; empty when the array itself could not be read
    /// (`items.length` threw: the call clears the exception, and the
    /// element-by-element reading reports the problem).
    pub fn counts(&self, env: &Env, array: &Unknown<'_>) -> Vec<u32> {
        let count = || -> napi::Result<Vec<u32>> {
            // SAFETY: a value of this environment, passed to a call that
            // returns before the caller's scope ends.
            let array = unsafe { Unknown::from_napi_value(env.raw(), array.raw()) }?;
            Ok(self.function.borrow_back(env)?.call(array)?.to_vec())
        };
        count().unwrap_or_default()
    }
}
