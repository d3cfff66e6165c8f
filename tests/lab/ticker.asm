; ticker.asm: a 512-byte x86 boot sector that proves a guest is alive.
;
; It prints "ticker boot" once, then "tick N" about once a second to COM1
; (0x3F8), dirtying 256 KiB of RAM between ticks so a live migration has
; real pages to copy. Seeing the counter continue across a migration, with
; the banner only once in the serial log, proves the guest moved live and
; did not reboot.
;
; It also honours the ACPI power button (libvirt's graceful shutdown, with
; <features><acpi/></features> in the domain): it prints "ticker off" and
; powers off through the PIIX4 PM registers, which QEMU's pc machine places at 0x600
; (PM1a status +0, enable +2, control +4), as an OS would.
;
; Build (once, the result is embedded in lab.sh as base64; nasm is not
; needed to run the lab):
;   nasm -f bin -o ticker.bin ticker.asm
bits 16
org 0x7c00

PM1_STS equ 0x0600
PM1_EN  equ 0x0602
PM1_CNT equ 0x0604
PWRBTN  equ 0x0100

start:
        cli
        xor ax, ax
        mov ds, ax
        mov ss, ax
        mov sp, 0x7c00
        sti
        cld
        mov si, banner
        call puts

        ; Let the power button set its status bit (PM1_EN.PWRBTN_EN).
        mov dx, PM1_EN
        in ax, dx
        or ax, PWRBTN
        out dx, ax

tick_loop:
        ; Wait 18 BIOS timer ticks (18.2 Hz, so about 0.99 s), halting between interrupts.
        mov bx, [0x046c]
.wait:  hlt
        mov dx, PM1_STS
        in ax, dx
        test ax, PWRBTN
        jnz power_off
        mov ax, [0x046c]
        sub ax, bx
        cmp ax, 18
        jb .wait

        inc word [counter]

        ; Dirty 4 x 64 KiB at 0x10000..0x4ffff with the counter value.
        mov dx, 0x1000
.dirty: mov es, dx
        xor di, di
        mov cx, 0x8000
        mov ax, [counter]
        rep stosw
        add dx, 0x1000
        cmp dx, 0x5000
        jb .dirty

        mov si, tick_text
        call puts
        mov ax, [counter]
        call put_decimal
        mov al, 10
        call putc
        jmp tick_loop

; The power button was pressed: say so and switch off (SLP_TYP 0 = S5, SLP_EN).
power_off:
        mov si, off_text
        call puts
        mov dx, PM1_CNT
        mov ax, 0x2000
        out dx, ax
.stop:  hlt
        jmp .stop

; Print the NUL-terminated string at DS:SI.
puts:   lodsb
        test al, al
        jz .done
        call putc
        jmp puts
.done:  ret

; Print AX in decimal.
put_decimal:
        mov bx, 10
        xor cx, cx
.div:   xor dx, dx
        div bx
        push dx
        inc cx
        test ax, ax
        jnz .div
.out:   pop ax
        add al, '0'
        call putc
        loop .out
        ret

; Write AL to COM1 once its transmit holding register is empty.
putc:   push dx
        push ax
        mov dx, 0x3fd
.busy:  in al, dx
        test al, 0x20
        jz .busy
        pop ax
        mov dx, 0x3f8
        out dx, al
        pop dx
        ret

banner:    db "ticker boot", 10, 0
tick_text: db "tick ", 0
off_text:  db "ticker off", 10, 0
counter:   dw 0

        times 510 - ($ - $$) db 0
        dw 0xaa55
