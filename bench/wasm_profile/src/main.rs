//! `wasm_profile IN.wasm OUT.wasm`: writes a copy of a module that counts
//! how often each straight run of its code executes, and `OUT.wasm.map`,
//! which says where each run's instructions are, for `bench/profile.py`.
//!
//! A run ends at every instruction that may branch or be branched to
//! (`block` excepted: entering one is falling through). Before the run's
//! last instruction the copy adds one to the run's counter, an `i64` in
//! memory that the wrapped `_start` grows for them before the program
//! starts; when `main` returns, the counters go to stderr, after the
//! eight bytes `WXCOUNTS`. The counters sit in pages of their own, which
//! the program's allocator never hands out (`memory.grow` only adds pages).
//!
//! The map lists, per line: `imports N` (the module's imported functions,
//! which come first in the function index space), `func INDEX NAME` (from
//! the name section), `run ID OFFSET,OFFSET,...` (the code offsets of a run's
//! instructions, as DWARF numbers them: from the start of the code
//! section's contents), `call OFFSET CALLEE` and `copy OFFSET SIZE` (each
//! `memory.copy`, which under WasmEdge's AOT code is a call into the
//! runtime; SIZE is its length when a constant comes just before it, as for
//! the move of a value over 64 bytes, else `-`).
//!
//! A program that ends through `proc_exit` (a non-zero exit code) writes no
//! counts.

use std::fmt::Write as _;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    CodeSection, ConstExpr, CustomSection, ExportSection, Function, FunctionSection, GlobalSection,
    GlobalType, Instruction, MemArg, Module, RawSection, TypeSection, ValType,
};
use wasmparser::{KnownCustom, Name, Operator, Parser, Payload, TypeRef};

/// What the rewrite needs to know before it starts.
#[derive(Default)]
struct Layout {
    imported_functions: u32,
    imported_globals: u32,
    fd_write: Option<u32>,
    types: u32,
    functions: u32,
    globals: u32,
    start: Option<u32>,
    start_section: bool,
}

fn layout(wasm: &[u8]) -> Result<Layout, String> {
    let mut layout = Layout::default();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| e.to_string())? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| e.to_string())?;
                    match import.ty {
                        TypeRef::Func(_) => {
                            if import.name == "fd_write" {
                                layout.fd_write = Some(layout.imported_functions);
                            }
                            layout.imported_functions += 1;
                        }
                        TypeRef::Global(_) => layout.imported_globals += 1,
                        _ => {}
                    }
                }
            }
            Payload::TypeSection(reader) => layout.types = reader.count(),
            Payload::FunctionSection(reader) => layout.functions = reader.count(),
            Payload::GlobalSection(reader) => layout.globals = reader.count(),
            Payload::StartSection { .. } => layout.start_section = true,
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(|e| e.to_string())?;
                    if export.name == "_start" {
                        layout.start = Some(export.index);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(layout)
}

/// Whether an instruction ends a straight run: it may branch, or be where a
/// branch lands (a loop's start, the code after an `if`, `else` or `end`).
fn ends_run(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Else
            | Operator::End
            | Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. }
            | Operator::Return
            | Operator::Unreachable
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
    )
}

fn instrument(wasm: &[u8], map: &mut String) -> Result<Vec<u8>, String> {
    let layout = layout(wasm)?;
    let fd_write = layout.fd_write.ok_or("the module imports no fd_write")?;
    let start = layout.start.ok_or("the module exports no _start")?;
    if layout.start_section {
        // It would run, and count into address 0, before the counters exist.
        return Err("the module has a start function".into());
    }
    // One new global: where the counters start.
    let base = layout.imported_globals + layout.globals;
    let dump = layout.imported_functions + layout.functions;
    let wrapper = dump + 1;
    let _ = writeln!(map, "imports {}", layout.imported_functions);
    let mut module = Module::new();
    let mut code = CodeSection::new();
    let mut code_start = 0;
    let mut runs = 0u64;
    let mut defined = 0;
    let err = |e: wasm_encoder::reencode::Error| format!("{e:?}");
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| e.to_string())? {
            Payload::TypeSection(reader) => {
                let mut types = TypeSection::new();
                RoundtripReencoder
                    .parse_type_section(&mut types, reader)
                    .map_err(err)?;
                types.ty().function([], []);
                module.section(&types);
            }
            Payload::FunctionSection(reader) => {
                let mut functions = FunctionSection::new();
                RoundtripReencoder
                    .parse_function_section(&mut functions, reader)
                    .map_err(err)?;
                functions.function(layout.types);
                functions.function(layout.types);
                module.section(&functions);
            }
            Payload::GlobalSection(reader) => {
                let mut globals = GlobalSection::new();
                RoundtripReencoder
                    .parse_global_section(&mut globals, reader)
                    .map_err(err)?;
                let ty = GlobalType {
                    val_type: ValType::I32,
                    mutable: true,
                    shared: false,
                };
                globals.global(ty, &ConstExpr::i32_const(0));
                module.section(&globals);
            }
            Payload::ExportSection(reader) => {
                let mut exports = ExportSection::new();
                for export in reader {
                    let export = export.map_err(|e| e.to_string())?;
                    let kind = RoundtripReencoder.export_kind(export.kind).map_err(err)?;
                    let index = match export.name {
                        "_start" => wrapper,
                        _ => export.index,
                    };
                    exports.export(export.name, kind, index);
                }
                module.section(&exports);
            }
            Payload::CodeSectionStart { range, .. } => code_start = range.start,
            Payload::CodeSectionEntry(body) => {
                let mut function = RoundtripReencoder
                    .new_function_with_parsed_locals(&body)
                    .map_err(err)?;
                let mut reader = body.get_operators_reader().map_err(|e| e.to_string())?;
                let mut offsets: Vec<usize> = Vec::new();
                // The constant just before, which a copy of a known length takes as it.
                let mut constant: Option<i32> = None;
                while !reader.eof() {
                    let at = reader.original_position() - code_start;
                    let op = reader.read().map_err(|e| e.to_string())?;
                    offsets.push(at);
                    match &op {
                        Operator::Call { function_index } => {
                            let _ = writeln!(map, "call {at} {function_index}");
                        }
                        Operator::MemoryCopy { .. } => {
                            let size = constant.map_or("-".to_string(), |n| n.to_string());
                            let _ = writeln!(map, "copy {at} {size}");
                        }
                        _ => {}
                    }
                    constant = match &op {
                        Operator::I32Const { value } => Some(*value),
                        _ => None,
                    };
                    let ends = ends_run(&op);
                    let instruction = RoundtripReencoder.instruction(op).map_err(err)?;
                    if ends {
                        // counters[runs] += 1, before the run's last instruction.
                        let counter = MemArg {
                            offset: 8 * runs,
                            align: 3,
                            memory_index: 0,
                        };
                        function.instruction(&Instruction::GlobalGet(base));
                        function.instruction(&Instruction::GlobalGet(base));
                        function.instruction(&Instruction::I64Load(counter));
                        function.instruction(&Instruction::I64Const(1));
                        function.instruction(&Instruction::I64Add);
                        function.instruction(&Instruction::I64Store(counter));
                        let listed: Vec<String> = offsets.iter().map(usize::to_string).collect();
                        let _ = writeln!(map, "run {runs} {}", listed.join(","));
                        offsets.clear();
                        runs += 1;
                    }
                    function.instruction(&instruction);
                }
                code.function(&function);
                defined += 1;
                if defined == layout.functions {
                    code.function(&dump_function(base, runs, fd_write));
                    code.function(&wrapper_function(base, runs, start, dump));
                    module.section(&code);
                }
            }
            Payload::CustomSection(section) => {
                // The names stay (the functions keep their indices); DWARF,
                // whose offsets no longer hold, goes.
                if let KnownCustom::Name(names) = section.as_known() {
                    for subsection in names {
                        if let Ok(Name::Function(functions)) = subsection {
                            for naming in functions.into_iter().flatten() {
                                let _ = writeln!(map, "func {} {}", naming.index, naming.name);
                            }
                        }
                    }
                    module.section(&CustomSection {
                        name: section.name().into(),
                        data: section.data().into(),
                    });
                }
            }
            Payload::Version { .. } | Payload::End(_) => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    module.section(&RawSection {
                        id,
                        data: &wasm[range],
                    });
                }
            }
        }
    }
    Ok(module.finish())
}

/// Bytes below the counters: an iovec (8), `fd_write`'s count (4, padded
/// to 8), and the marker (8).
const BELOW: i32 = 24;

/// Grows the memory for the counters (and what goes below them), calls the
/// program's `_start`, then writes the counters.
fn wrapper_function(base: u32, runs: u64, start: u32, dump: u32) -> Function {
    let pages = (runs * 8 + BELOW as u64) / 65536 + 1;
    let mut f = Function::new([]);
    for instruction in [
        Instruction::I32Const(pages as i32),
        Instruction::MemoryGrow(0),
        Instruction::I32Const(16),
        Instruction::I32Shl,
        Instruction::I32Const(BELOW),
        Instruction::I32Add,
        Instruction::GlobalSet(base),
        Instruction::Call(start),
        Instruction::Call(dump),
        Instruction::End,
    ] {
        f.instruction(&instruction);
    }
    f
}

/// Writes `WXCOUNTS` and the counters to stderr (fd 2) in one `fd_write`.
fn dump_function(base: u32, runs: u64, fd_write: u32) -> Function {
    let at = |offset: i32| {
        [
            Instruction::GlobalGet(base),
            Instruction::I32Const(offset),
            Instruction::I32Sub,
        ]
    };
    let memarg = |align| MemArg {
        offset: 0,
        align,
        memory_index: 0,
    };
    let mut f = Function::new([]);
    let mut code = Vec::new();
    // The iovec at base - 24: the bytes from base - 8 on.
    code.extend(at(BELOW));
    code.extend(at(8));
    code.push(Instruction::I32Store(memarg(2)));
    code.extend(at(BELOW - 4));
    code.push(Instruction::I32Const(8 + 8 * runs as i32));
    code.push(Instruction::I32Store(memarg(2)));
    // The marker at base - 8: "WXCOUNTS", little-endian.
    code.extend(at(8));
    code.push(Instruction::I64Const(0x5354_4e55_4f43_5857));
    code.push(Instruction::I64Store(memarg(3)));
    code.push(Instruction::I32Const(2));
    code.extend(at(BELOW));
    code.push(Instruction::I32Const(1));
    code.extend(at(16));
    code.push(Instruction::Call(fd_write));
    code.push(Instruction::Drop);
    code.push(Instruction::End);
    for instruction in &code {
        f.instruction(instruction);
    }
    f
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = &args[..] else {
        eprintln!("usage: wasm_profile IN.wasm OUT.wasm (see bench/profile.py)");
        std::process::exit(2);
    };
    let result = std::fs::read(input)
        .map_err(|e| format!("{input}: {e}"))
        .and_then(|wasm| {
            let mut map = String::new();
            let out = instrument(&wasm, &mut map)?;
            std::fs::write(output, out).map_err(|e| format!("{output}: {e}"))?;
            std::fs::write(format!("{output}.map"), map).map_err(|e| format!("{output}.map: {e}"))
        });
    if let Err(e) = result {
        eprintln!("wasm_profile: {e}");
        std::process::exit(1);
    }
}
