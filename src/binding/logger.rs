//! Forwards a client's log records to a JavaScript logger: the `logger` the
//! user passed (console, Nest's `Logger`, pino, …) or, by default, `console`.

use crate::binding::js::{self, CoreResult};
use crate::core::logging::{LogLevel, LogRecord, LogSink};
use napi::bindgen_prelude::{FnArgs, FromNapiValue, Function, JsObjectValue, Object, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsValue, ValueType};
use std::sync::Arc;

/// Weak: a logger must never keep the process alive. Not callee-handled:
/// arguments are passed as they are, `(message, context)`.
type Method<Args> = ThreadsafeFunction<Args, Unknown<'static>, Args, napi::Status, false, true>;
type LoggerArgs = FnArgs<(String, String)>;
type ConsoleArgs = FnArgs<(String,)>;

enum Target {
    /// A user logger: `logger.warn(message, context)`, like Nest's `Logger`.
    Logger([Option<Method<LoggerArgs>>; 5]),
    /// `console`: one preformatted line, `[context] message`.
    Console([Option<Method<ConsoleArgs>>; 5]),
}

pub struct JsLogSink {
    target: Target,
}

/// Which method receives each level, most preferred first (index = level - 1).
const METHOD_NAMES: [&[&str]; 5] = [
    &["error"],
    &["warn"],
    &["info", "log"],
    &["debug", "verbose", "log"],
    &["verbose", "debug"],
];

impl JsLogSink {
    /// The user's logger object, or `console` when `logger` is absent.
    pub fn sink(env: &Env, logger: Option<Unknown<'_>>) -> CoreResult<Arc<dyn LogSink>> {
        let target = match js::as_option(logger) {
            Some(logger) => {
                let object = js::object(&logger, "logger")?;
                Target::Logger(methods(env, &object)?)
            }
            None => {
                let console = env
                    .get_global()
                    .and_then(|global| global.get_named_property::<Object<'_>>("console"))
                    .map_err(|error| {
                        js::invalid(format!("console is not available: {}", error.reason))
                    })?;
                Target::Console(methods(env, &console)?)
            }
        };
        Ok(Arc::new(JsLogSink { target }))
    }
}

fn methods<Args: 'static + napi::bindgen_prelude::JsValuesTupleIntoVec>(
    env: &Env,
    object: &Object<'_>,
) -> CoreResult<[Option<Method<Args>>; 5]> {
    let mut found: [Option<Method<Args>>; 5] = Default::default();
    for (slot, names) in found.iter_mut().zip(METHOD_NAMES) {
        for name in names {
            if let Some(method) = bound_method(env, object, name)? {
                *slot = Some(method);
                break;
            }
        }
    }
    Ok(found)
}

/// `object[name].bind(object)` as a thread-safe function, or `None` when
/// there is no such method. Binding keeps `this` for loggers that need it.
fn bound_method<Args: 'static + napi::bindgen_prelude::JsValuesTupleIntoVec>(
    env: &Env,
    object: &Object<'_>,
    name: &str,
) -> CoreResult<Option<Method<Args>>> {
    let what = format!("logger.{name}");
    let fail = |error: napi::Error| js::invalid(format!("{what}: {}", error.reason));
    let method: Unknown<'_> = object.get_named_property(name).map_err(fail)?;
    if !matches!(method.get_type(), Ok(ValueType::Function)) {
        return Ok(None);
    }
    // SAFETY: `method` was just checked to be a function of this environment.
    let method_object =
        unsafe { Object::from_napi_value(env.raw(), method.raw()) }.map_err(fail)?;
    let bind: Function<'_, Unknown<'_>, Unknown<'_>> =
        method_object.get_named_property("bind").map_err(fail)?;
    let bound = bind.apply(method, object.to_unknown()).map_err(fail)?;
    // SAFETY: `Function.prototype.bind` returns a function of this environment.
    let bound: Function<'_, Args, Unknown<'_>> =
        unsafe { Function::from_napi_value(env.raw(), bound.raw()) }.map_err(fail)?;
    let tsfn = bound
        .build_threadsafe_function::<Args>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()
        .map_err(fail)?;
    Ok(Some(tsfn))
}

impl LogSink for JsLogSink {
    fn log(&self, record: LogRecord) {
        let index = match record.level {
            LogLevel::Off => return,
            level => level as usize - 1,
        };
        // A logger that throws must not take the process down: the callback
        // receives (and drops) the exception instead of it becoming fatal.
        let ignore_result = |_: napi::Result<Unknown<'static>>, _: Env| Ok(());
        match &self.target {
            Target::Logger(methods) => {
                if let Some(method) = &methods[index] {
                    method.call_with_return_value(
                        FnArgs::from((record.message, record.context.to_string())),
                        ThreadsafeFunctionCallMode::NonBlocking,
                        ignore_result,
                    );
                }
            }
            Target::Console(methods) => {
                if let Some(method) = &methods[index] {
                    let line = format!(
                        "[kafka] {} [{}] {}",
                        record.level.as_str().to_uppercase(),
                        record.context,
                        record.message
                    );
                    method.call_with_return_value(
                        FnArgs::from((line,)),
                        ThreadsafeFunctionCallMode::NonBlocking,
                        ignore_result,
                    );
                }
            }
        }
    }
}
