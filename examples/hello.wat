;; A WASI command that prints a greeting to stdout.
;; Run it with: cargo run --release -- run examples/hello.wat
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from a sealed program\n")
  (func (export "_start")
    ;; iovec at 0: { buf = 16, len = 28 }
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 28))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
