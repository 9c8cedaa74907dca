//! Procedural macros re-exported by `memprof`: `#[memprof::test]` and
//! `#[memprof::scope]`.
//!
//! Written against `proc_macro` alone (no syn/quote): the attributes only
//! need a function's name and body, and keeping this crate dependency-free
//! keeps every user's build fast.

use proc_macro::{Delimiter, Group, Ident, Literal, Span, TokenStream, TokenTree};

/// Turns a function into a leak test or a soak test.
///
/// ```ignore
/// #[memprof::test(max_leak = "4 KiB")]   // runs once; fails if more than 4 KiB allocated in the body is still live at its end
/// fn parser_does_not_leak() { ... }
///
/// #[memprof::test(iterations = 1000, warmup = 50, max_growth_per_iter = "16 B")]
/// fn cache_is_bounded() { ... }          // fails when its live bytes grow (net of frees) faster than the limit per iteration
/// ```
///
/// An `async fn` works too, above `#[tokio::test(...)]` (memprof builds that
/// runtime inside the tracked test, once for all of a soak's iterations) or
/// alone (a current-thread runtime with time and I/O):
///
/// ```ignore
/// #[memprof::test(max_leak = "4 KiB")]
/// #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// async fn handler_does_not_leak() { tokio::spawn(async { ... }).await.unwrap(); }
/// ```
///
/// `scope = "path"` limits either kind to the blocks allocated in that scope
/// and the scopes nested in it (a path that starts with a label, like
/// `"route=GET /ingest"`, matches it at any depth); the rest of what the
/// test allocates (caches warming, the runtime) is reported beside the
/// verdict but not part of it, and a scope never entered fails the test:
///
/// ```ignore
/// #[memprof::test(iterations = 1000, warmup = 50, scope = "ingest")]
/// fn ingest_keeps_nothing() { memprof::scope("ingest", || handle(request())); }
/// ```
///
/// Sizes accept `B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`. The function runs
/// as a normal `#[test]`; its thread, and every thread started from it, record
/// every allocation (rate 1) for the duration, while tests running in
/// parallel are not counted (see `memprof::testing`). On failure the test
/// writes a flamegraph of what leaked to `<target dir>/memprof/<test name>.svg`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand_test(args, item) {
        Ok(tokens) => tokens,
        Err((span, message)) => compile_error(span, &message),
    }
}

/// Attributes what a function allocates to a scope named after it (or
/// `#[memprof::scope("name")]`). See `memprof::scope`.
///
/// On a plain function the scope marks the thread for the call
/// (`memprof::enter_scope`). On an `async fn` it follows the function's
/// future instead (`memprof::instrument`): entered for each poll, on
/// whichever thread polls it, and left when the poll returns.
#[proc_macro_attribute]
pub fn scope(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand_scope(args, item) {
        Ok(tokens) => tokens,
        Err((span, message)) => compile_error(span, &message),
    }
}

type Error = (Span, String);

struct FnParts {
    /// Everything before the body: attributes, visibility, signature.
    head: Vec<TokenTree>,
    name: Ident,
    body: Group,
    is_async: bool,
}

fn split_fn(item: TokenStream) -> Result<FnParts, Error> {
    let tokens: Vec<TokenTree> = item.into_iter().collect();
    let fn_at = tokens
        .iter()
        .position(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "fn"))
        .ok_or((
            Span::call_site(),
            "memprof: expected a function".to_string(),
        ))?;
    let name = match tokens.get(fn_at + 1) {
        Some(TokenTree::Ident(name)) => name.clone(),
        _ => {
            return Err((
                Span::call_site(),
                "memprof: expected a function name".to_string(),
            ))
        }
    };
    let is_async = tokens[..fn_at]
        .iter()
        .any(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "async"));
    match tokens.last() {
        Some(TokenTree::Group(body)) if body.delimiter() == Delimiter::Brace => Ok(FnParts {
            head: tokens[..tokens.len() - 1].to_vec(),
            name,
            body: body.clone(),
            is_async,
        }),
        _ => Err((
            name.span(),
            "memprof: expected a function with a body".to_string(),
        )),
    }
}

/// `key = value` pairs separated by commas.
fn parse_args(args: TokenStream) -> Result<Vec<(Ident, TokenTree)>, Error> {
    let tokens: Vec<TokenTree> = args.into_iter().collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let key = match &tokens[i] {
            TokenTree::Ident(key) => key.clone(),
            other => return Err((other.span(), "memprof: expected `name = value`".to_string())),
        };
        match tokens.get(i + 1) {
            Some(TokenTree::Punct(p)) if p.as_char() == '=' => {}
            _ => return Err((key.span(), format!("memprof: expected `=` after `{key}`"))),
        }
        let value = tokens
            .get(i + 2)
            .cloned()
            .ok_or((key.span(), format!("memprof: `{key}` needs a value")))?;
        pairs.push((key, value));
        i += 3;
        match tokens.get(i) {
            None => {}
            Some(TokenTree::Punct(p)) if p.as_char() == ',' => i += 1,
            Some(other) => {
                return Err((
                    other.span(),
                    "memprof: expected `,` between arguments".to_string(),
                ))
            }
        }
    }
    Ok(pairs)
}

fn size_arg(key: &Ident, value: &TokenTree) -> Result<u64, Error> {
    let text = value.to_string();
    let unquoted = text.trim_matches('"');
    if !text.starts_with('"') {
        return Err((
            value.span(),
            format!("memprof: `{key}` takes a size in quotes, like \"4 KiB\""),
        ));
    }
    match memprof_size::parse_size(unquoted) {
        Ok(size) if size.unit_given => Ok(size.bytes),
        Ok(_) => Err("missing unit; use B, KB, KiB, MB, MiB, GB or GiB".to_string()),
        Err(why) => Err(why.to_string()),
    }
    .map_err(|why| (value.span(), format!("memprof: `{key} = {text}`: {why}")))
}

/// A scope path: a string literal, as written (the test checks the rest of
/// it when it runs, the way `memprof::testing::track_scope` does).
fn scope_arg(key: &Ident, value: &TokenTree) -> Result<String, Error> {
    let text = match value {
        TokenTree::Literal(lit) => lit.to_string(),
        _ => String::new(),
    };
    let is_string = text.starts_with('"') || text.starts_with("r\"") || text.starts_with("r#");
    if !is_string {
        return Err((
            value.span(),
            format!(
                "memprof: `{key}` takes a scope path in quotes, like \"ingest\" or \"route=GET /ingest\""
            ),
        ));
    }
    if text == "\"\"" || text.trim_start_matches('r').trim_matches('#') == "\"\"" {
        return Err((
            value.span(),
            format!("memprof: `{key} = {text}` is empty; name the scope, like \"ingest\""),
        ));
    }
    Ok(text)
}

fn count_arg(key: &Ident, value: &TokenTree) -> Result<u64, Error> {
    value
        .to_string()
        .replace('_', "")
        .parse::<u64>()
        .map_err(|_| {
            (
                value.span(),
                format!("memprof: `{key}` takes a whole number, like 1000"),
            )
        })
}

fn expand_test(args: TokenStream, item: TokenStream) -> Result<TokenStream, Error> {
    let mut max_leak = None;
    let mut iterations = None;
    let mut warmup = None;
    let mut max_growth = None;
    let mut scope = None;
    let mut given: Vec<String> = Vec::new();
    for (key, value) in parse_args(args)? {
        let name = key.to_string();
        if given.contains(&name) {
            return Err((key.span(), format!("memprof: `{name}` is given twice")));
        }
        match name.as_str() {
            "max_leak" => max_leak = Some(size_arg(&key, &value)?),
            "max_growth_per_iter" => max_growth = Some(size_arg(&key, &value)?),
            "iterations" => iterations = Some(count_arg(&key, &value)?),
            "warmup" => warmup = Some(count_arg(&key, &value)?),
            "scope" => scope = Some(scope_arg(&key, &value)?),
            other => {
                return Err((
                    key.span(),
                    format!(
                        "memprof: unknown argument `{other}`; expected max_leak, iterations, warmup, max_growth_per_iter or scope"
                    ),
                ))
            }
        }
        given.push(name);
    }
    let scope = match scope {
        Some(path) => format!("::core::option::Option::Some({path})"),
        None => "::core::option::Option::None".to_string(),
    };
    let parts = split_fn(item)?;
    let name = parts.name.to_string();
    let soak = iterations.is_some() || max_growth.is_some();
    if soak && max_leak.is_some() {
        return Err((
            parts.name.span(),
            "memprof: use max_leak for a single run, or iterations/warmup/max_growth_per_iter for a soak, not both"
                .to_string(),
        ));
    }
    // Outer attributes (#[ignore], #[should_panic], docs) belong on the
    // test; `#[tokio::test]` says how to build the runtime; a test
    // attribute left by a macro expanded before this one is replaced by
    // this test's own.
    let mut attributes: Vec<TokenTree> = Vec::new();
    let mut tokio_test = None;
    let mut expanded_test = false;
    let mut head = parts.head.as_slice();
    while let [TokenTree::Punct(hash), TokenTree::Group(attr), rest @ ..] = head {
        if hash.as_char() != '#' || attr.delimiter() != Delimiter::Bracket {
            break;
        }
        match attribute_kind(attr) {
            Attribute::TokioTest(args) => tokio_test = Some((attr.span(), args)),
            Attribute::Test => expanded_test = true,
            Attribute::Other => {
                attributes.push(TokenTree::Punct(hash.clone()));
                attributes.push(TokenTree::Group(attr.clone()));
            }
        }
        head = rest;
    }
    // How the body runs: a plain call, or in a runtime made once (after a
    // runtime primed the thread, untracked). `setup` is "prime, setup".
    let (setup, run) = if parts.is_async {
        let runtime = match tokio_test {
            Some((span, args)) => tokio_runtime(span, args)?,
            None => "::memprof::testing::__current_thread_runtime()".to_string(),
        };
        (
            format!("|| {runtime}.block_on(async {{}}), || {runtime}"),
            format!("|__memprof_runtime| {{ __memprof_runtime.block_on({name}()); }}"),
        )
    } else {
        if let Some((span, _)) = tokio_test {
            return Err((
                span,
                "memprof: #[tokio::test] needs an `async fn`".to_string(),
            ));
        }
        let runs_a_runtime = expanded_test && mentions(&parts.body.stream(), "block_on");
        if soak && runs_a_runtime {
            return Err((
                parts.name.span(),
                "memprof: write #[memprof::test(...)] above #[tokio::test], not below: below it, \
                 tokio builds a new runtime for every iteration of the soak (and drops the tasks \
                 and resources of the last one); above it, one runtime serves them all"
                    .to_string(),
            ));
        }
        let prime = if runs_a_runtime {
            "|| ::memprof::testing::__prime_tokio()"
        } else {
            "|| ()"
        };
        (format!("{prime}, || ()"), format!("|_: &()| {name}()"))
    };
    let call = if soak {
        format!(
            "::memprof::testing::__run_soak_test(concat!(module_path!(), \"::\", \"{name}\"), {}, {}, {}, {scope}, {setup}, {run});",
            iterations.unwrap_or(1000),
            warmup.unwrap_or(10),
            max_growth.unwrap_or(0)
        )
    } else {
        format!(
            "::memprof::testing::__run_leak_test(concat!(module_path!(), \"::\", \"{name}\"), {}, {scope}, {setup}, {run});",
            max_leak.unwrap_or(0)
        )
    };
    // #[test] fn name() { <the original fn, same name> ; run(name) }
    let mut inner: TokenStream = head.iter().cloned().collect();
    inner.extend([TokenTree::Group(parts.body)]);
    let mut body = inner;
    body.extend(
        call.parse::<TokenStream>()
            .map_err(|e| (Span::call_site(), e.to_string()))?,
    );
    let mut out: TokenStream = attributes.into_iter().collect();
    out.extend(
        format!("#[test] fn {name}()")
            .parse::<TokenStream>()
            .map_err(|e| (Span::call_site(), e.to_string()))?,
    );
    out.extend([TokenTree::Group(Group::new(Delimiter::Brace, body))]);
    Ok(out)
}

/// What an outer attribute of a test function is, to this macro.
enum Attribute {
    /// `#[tokio::test]` or `#[tokio::test(...)]`, with its arguments.
    TokioTest(TokenStream),
    /// `#[test]`, as written or as another test macro leaves it
    /// (`#[::core::prelude::v1::test]`).
    Test,
    Other,
}

fn attribute_kind(attr: &Group) -> Attribute {
    let mut path = String::new();
    let mut args = TokenStream::new();
    for token in attr.stream() {
        match token {
            TokenTree::Ident(i) => path.push_str(&i.to_string()),
            TokenTree::Punct(p) if p.as_char() == ':' => path.push(':'),
            TokenTree::Group(g) if g.delimiter() == Delimiter::Parenthesis => args = g.stream(),
            _ => return Attribute::Other,
        }
    }
    match path.trim_start_matches("::") {
        "tokio::test" => Attribute::TokioTest(args),
        "test" | "core::prelude::v1::test" | "std::prelude::v1::test" => Attribute::Test,
        _ => Attribute::Other,
    }
}

/// The runtime `#[tokio::test(args)]` would build, as an expression:
/// `flavor`, `worker_threads`, `start_paused` and `crate` as tokio reads
/// them.
fn tokio_runtime(span: Span, args: TokenStream) -> Result<String, Error> {
    let mut multi_thread = false;
    let mut workers = String::new();
    let mut paused = String::new();
    let mut krate = "::tokio".to_string();
    for (key, value) in parse_args(args)? {
        let text = value.to_string();
        match key.to_string().as_str() {
            "flavor" => match text.as_str() {
                "\"multi_thread\"" => multi_thread = true,
                "\"current_thread\"" => multi_thread = false,
                _ => {
                    return Err((
                        value.span(),
                        format!("memprof: tokio flavor {text} is not \"current_thread\" or \"multi_thread\""),
                    ))
                }
            },
            "worker_threads" => workers = format!(".worker_threads({text})"),
            "start_paused" => paused = format!(".start_paused({text})"),
            "crate" => krate = format!("::{}", text.trim_matches('"')),
            other => {
                return Err((
                    key.span(),
                    format!(
                        "memprof: #[tokio::test({other} = ..)] is not supported under #[memprof::test]; \
                         supported: flavor, worker_threads, start_paused, crate"
                    ),
                ))
            }
        }
    }
    if !workers.is_empty() && !multi_thread {
        return Err((
            span,
            "memprof: worker_threads needs flavor = \"multi_thread\"".to_string(),
        ));
    }
    let builder = if multi_thread {
        "new_multi_thread"
    } else {
        "new_current_thread"
    };
    Ok(format!(
        "{krate}::runtime::Builder::{builder}(){workers}.enable_all(){paused}.build()\
         .expect(\"memprof: building the test's tokio runtime\")"
    ))
}

/// Whether `ident` appears anywhere in `tokens`.
fn mentions(tokens: &TokenStream, ident: &str) -> bool {
    tokens.clone().into_iter().any(|t| match t {
        TokenTree::Ident(i) => i.to_string() == ident,
        TokenTree::Group(g) => mentions(&g.stream(), ident),
        _ => false,
    })
}

fn expand_scope(args: TokenStream, item: TokenStream) -> Result<TokenStream, Error> {
    let parts = split_fn(item)?;
    let args: Vec<TokenTree> = args.into_iter().collect();
    let name = match args.as_slice() {
        [] => {
            let name = format!("{}", parts.name);
            let mut lit = Literal::string(&name);
            lit.set_span(parts.name.span());
            TokenTree::Literal(lit)
        }
        [TokenTree::Literal(lit)] if lit.to_string().starts_with('"') => {
            TokenTree::Literal(lit.clone())
        }
        _ => {
            return Err((
                Span::call_site(),
                "memprof: expected #[memprof::scope] or #[memprof::scope(\"name\")]".to_string(),
            ))
        }
    };
    let parse = |code: &str| {
        code.parse::<TokenStream>()
            .map_err(|e| (Span::call_site(), e.to_string()))
    };
    let body = if parts.is_async {
        // `::memprof::instrument(name, async move { body }).await`: the
        // scope follows the body's future across awaits and threads (a
        // guard on the thread would charge other tasks polled there). The
        // block is `async move` so it owns the arguments, as the function's
        // own future does.
        let mut body = parse("::memprof::instrument")?;
        let mut args = TokenStream::from(name);
        args.extend(parse(", async move")?);
        args.extend([TokenTree::Group(Group::new(
            Delimiter::Brace,
            parts.body.stream(),
        ))]);
        body.extend([TokenTree::Group(Group::new(Delimiter::Parenthesis, args))]);
        body.extend(parse(".await")?);
        body
    } else {
        let mut body = parse("let __memprof_scope_guard = ::memprof::enter_scope")?;
        body.extend([TokenTree::Group(Group::new(
            Delimiter::Parenthesis,
            TokenStream::from(name),
        ))]);
        body.extend(parse(";")?);
        body.extend(parts.body.stream());
        body
    };
    let mut out: TokenStream = parts.head.into_iter().collect();
    let mut group = Group::new(Delimiter::Brace, body);
    group.set_span(parts.body.span());
    out.extend([TokenTree::Group(group)]);
    Ok(out)
}

fn compile_error(span: Span, message: &str) -> TokenStream {
    let mut lit = Literal::string(message);
    lit.set_span(span);
    let mut out: TokenStream = "::core::compile_error!".parse().unwrap_or_default();
    let mut group = Group::new(
        Delimiter::Parenthesis,
        TokenStream::from(TokenTree::Literal(lit)),
    );
    group.set_span(span);
    out.extend([TokenTree::Group(group)]);
    out.extend(";".parse::<TokenStream>().unwrap_or_default());
    out
}
