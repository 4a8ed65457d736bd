# spatc: a compiler for sparse attention patterns.
#   make            libspat.a, libspat.so, $(B)/spatc
#   make test       unit, golden-diagnostic, differential and CLI tests
#   make demo       JIT a library pattern, check it against the interpreter, time it
#   make bench      the README's performance table
#   make bench-compile   compile times per library pattern (cold, warm)
#   make install PREFIX=/usr/local    make uninstall PREFIX=...
# A missing tool (flex, bison, LLVM 19, cmocka, ...) is installed first by
# scripts/install-deps.sh (apt-get, Debian 12).

PREFIX      ?= /usr/local
CC          ?= cc
LLVM_CONFIG ?= /usr/lib/llvm-19/bin/llvm-config
BISON       ?= bison
FLEX        ?= flex
B           := build
# The version is defined once, in include/spat.h.
VERSION     := $(shell sed -n 's/^\#define SPAT_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$$/\2/p' include/spat.h | paste -sd.)

WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
OPT     ?= -O2 -g
LLVM_INC := -isystem $(shell $(LLVM_CONFIG) --includedir)

# The layers, kept by the include paths each folder is compiled with:
#   runtime/   what an AOT program links: sees include/ and runtime/ only
#   compiler/  the compile path: sees compiler/'s folders, runtime/, include/;
#              only compiler/backends/llvm/ is given LLVM's include path
#   cli/       the spatc driver and its file formats: sees include/spat.h
#              only (and bench/'s baselines), as a user program would, and
#              links libspat.a, which exports only spat_*
#   bench/     the baselines (plain pointers) and the demo, on spat.h too
INC_RT       := -Iinclude -Iruntime
INC_COMPILER := $(INC_RT) -Icompiler -Icompiler/front -Icompiler/ir -Icompiler/backends \
                -Icompiler/backends/interp -Icompiler/backends/llvm -I$(B)/gen
INC_CLI      := -Iinclude -Icli -Ibench
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -fPIC -fvisibility=hidden $(CFLAGS) $(SAN)
GEN_CFLAGS = $(filter-out -Wpedantic -Wmissing-prototypes,$(CFLAGS_BASE)) $(INC_COMPILER) \
             -Wno-unused-function -Wno-sign-compare -Wno-unused-but-set-variable
LIBS     = -L$(shell $(LLVM_CONFIG) --libdir) -Wl,-rpath,$(shell $(LLVM_CONFIG) --libdir) \
           -lLLVM-19 -lffi -lpthread -lm $(SAN)
BLAS_LIBS = -lopenblas
# the driver's own: zlib for PNG (cli/image.c)
CLI_LIBS = -lz

# Sources: the library is compiler/ and runtime/; the driver is cli/.
COMPILER_SRCS := $(shell find compiler -name '*.c' | sort)
RT_SRCS     := $(wildcard runtime/*.c)
DRIVER_SRCS := $(wildcard cli/*.c)
LIB_SRCS    := $(COMPILER_SRCS) $(RT_SRCS)
GEN_SRCS    := $(B)/gen/parser.c $(B)/gen/lexer.c
LIB_OBJS    := $(LIB_SRCS:%.c=$(B)/%.o) $(GEN_SRCS:%.c=%.o)
DRIVER_OBJS := $(DRIVER_SRCS:%.c=$(B)/%.o)
# The driver's parts without its main(), for the tests of cli/ modules.
CLI_LIB     := $(B)/libspatc-cli.a
# bench/ baselines: linked into the driver for `spatc bench`; built -O3
# -ffast-math, with per-CPU clones chosen at run time (no -march=native).
BENCH_OBJS  := $(B)/bench/baselines.o
TEST_SRCS   := $(wildcard tests/unit/test_*.c)
TEST_BINS   := $(TEST_SRCS:tests/unit/%.c=$(B)/tests/%)
DEPS_STAMP  := $(B)/.deps-ok

.PHONY: all test demo bench bench-compile bench-peers install uninstall clean asan ubsan valgrind tsan deps python test-torch
all: $(B)/libspat.a $(B)/libspat.so $(B)/spatc

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/install-deps.sh
	@mkdir -p $(B)
	@bash scripts/install-deps.sh
	@touch $@

$(B)/gen/parser.c $(B)/gen/parser.h &: grammar/parser.y | $(DEPS_STAMP)
	@mkdir -p $(B)/gen
	$(BISON) -Wall -Werror --defines=$(B)/gen/parser.h -o $(B)/gen/parser.c $<

$(B)/gen/lexer.c $(B)/gen/lexer.h &: grammar/lexer.l $(B)/gen/parser.h | $(DEPS_STAMP)
	@mkdir -p $(B)/gen
	$(FLEX) --header-file=$(B)/gen/lexer.h -o $(B)/gen/lexer.c $<

$(B)/gen/%.o: $(B)/gen/%.c
	$(CC) $(GEN_CFLAGS) -MMD -MP -c $< -o $@

$(B)/runtime/%.o: runtime/%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(INC_RT) -MMD -MP -c $< -o $@

$(B)/compiler/backends/llvm/%.o: compiler/backends/llvm/%.c | $(DEPS_STAMP) $(B)/gen/parser.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(INC_COMPILER) $(LLVM_INC) -MMD -MP -c $< -o $@

$(B)/compiler/%.o: compiler/%.c | $(DEPS_STAMP) $(B)/gen/parser.h $(B)/gen/lexer.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(INC_COMPILER) -MMD -MP -c $< -o $@

$(B)/cli/%.o: cli/%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(INC_CLI) -MMD -MP -c $< -o $@

$(B)/bench/%.o: bench/%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out $(OPT),$(CFLAGS_BASE)) -Ibench -g -O3 -ffast-math -MMD -MP -c $< -o $@

# libspat.a is one relocatable object whose hidden symbols are made local,
# so a static link sees only spat_* (as the shared library exports only
# them); the tests link libspat-internal.a, which keeps the internal names.
$(B)/libspat-internal.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/libspat.a: $(LIB_OBJS)
	@rm -f $@ $(B)/libspat.o
	ld -r -o $(B)/libspat.o $^
	objcopy --localize-hidden $(B)/libspat.o
	ar rcs $@ $(B)/libspat.o

$(B)/libspat.so: $(LIB_OBJS)
	$(CC) -shared -o $@ $^ $(LIBS)

$(B)/spatc: $(DRIVER_OBJS) $(BENCH_OBJS) $(B)/libspat.a
	@mkdir -p $(B)
	$(CC) -o $@ $(DRIVER_OBJS) $(BENCH_OBJS) $(B)/libspat.a $(LIBS) $(BLAS_LIBS) $(CLI_LIBS) -ldl

$(CLI_LIB): $(filter-out $(B)/cli/spatc.o,$(DRIVER_OBJS)) $(BENCH_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/tests/%: tests/unit/%.c $(B)/libspat-internal.a $(CLI_LIB) | $(DEPS_STAMP)
	@mkdir -p $(B)/tests
	$(CC) $(CFLAGS_BASE) $(INC_COMPILER) -Icli -Ibench -Itests -MMD -MP -o $@ $< $(CLI_LIB) $(B)/libspat-internal.a -lcmocka $(LIBS) $(BLAS_LIBS) $(CLI_LIBS)

test: all $(TEST_BINS)
	@B=$(B) SAN="$(SAN)" bash tests/run.sh $(TEST_BINS)

$(B)/demo: bench/demo.c $(B)/libspat.a
	$(CC) $(CFLAGS_BASE) -Iinclude -o $@ $< $(B)/libspat.a $(LIBS)

demo: all $(B)/demo
	@B=$(B) bash scripts/demo.sh

# Compile times through the public API only (bench/compile.sh).
$(B)/compile-times: bench/compile_times.c $(B)/libspat.a include/spat.h
	$(CC) $(CFLAGS_BASE) -Iinclude -o $@ $< $(B)/libspat.a $(LIBS)

bench: all $(B)/compile-times $(B)/bench-decode $(B)/bench-gqa
	@B=$(B) bash bench/run.sh

# The backward with `with score` against the same window (issue 11):
# build/bench-score-bwd [ROUNDS], from the repository root.
$(B)/bench-score-bwd: tests/perf/score_bwd.c $(B)/libspat.a include/spat.h
	$(CC) $(CFLAGS_BASE) -Iinclude -o $@ $< $(B)/libspat.a $(LIBS)

# The decode benchmark: in tests/perf/ as it links the internal library (it
# sets the decode threshold, kr_decode_max_lq, to time both paths).
$(B)/bench-decode: tests/perf/decode.c $(B)/libspat-internal.a include/spat.h
	$(CC) $(CFLAGS_BASE) $(INC_RT) -o $@ $< $(B)/libspat-internal.a $(LIBS)

# GQA prefill grouped vs one head a task (kr_gqa_group), internal too.
$(B)/bench-gqa: tests/perf/gqa.c $(B)/libspat-internal.a include/spat.h
	$(CC) $(CFLAGS_BASE) $(INC_RT) -o $@ $< $(B)/libspat-internal.a $(LIBS)

bench-compile: all $(B)/compile-times
	@B=$(B) bash bench/compile.sh

bench-peers: all
	@bash bench/peers.sh

# The Python package (python/, docs/python.md): libspat.so and the pattern
# library copied into it, then pip-installed into $(PYTHON)'s environment
# (a venv: Debian's own python3 refuses pip installs).
PYTHON ?= python3
python: $(B)/libspat.so
	cp $(B)/libspat.so python/spatc/libspat.so
	mkdir -p python/spatc/patterns && cp patterns/*.pat python/spatc/patterns/
	$(PYTHON) -m pip install ./python

# The torch layer's tests (tests/torch/run-torch.sh) in the venv
# $(SPATC_VENV), made and given torch when missing.
SPATC_VENV ?= $(HOME)/.cache/spatc-torch
test-torch: $(B)/libspat.so
	@B=$(B) SPATC_VENV=$(SPATC_VENV) bash tests/torch/run-torch.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/spatc/patterns \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(B)/spatc $(DESTDIR)$(PREFIX)/bin/spatc
	install -m 644 $(B)/libspat.a $(DESTDIR)$(PREFIX)/lib/libspat.a
	install -m 755 $(B)/libspat.so $(DESTDIR)$(PREFIX)/lib/libspat.so
	install -m 644 include/spat.h $(DESTDIR)$(PREFIX)/include/spat.h
	install -m 644 docs/spatc.1 $(DESTDIR)$(PREFIX)/share/man/man1/spatc.1
	install -m 644 patterns/*.pat $(DESTDIR)$(PREFIX)/share/spatc/patterns/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LLVMLIBDIR@|$(shell $(LLVM_CONFIG) --libdir)|g' \
	  -e 's|@VERSION@|$(VERSION)|g' \
	  scripts/spat.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/spat.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/spatc $(DESTDIR)$(PREFIX)/lib/libspat.a \
	  $(DESTDIR)$(PREFIX)/lib/libspat.so $(DESTDIR)$(PREFIX)/include/spat.h \
	  $(DESTDIR)$(PREFIX)/share/man/man1/spatc.1 $(DESTDIR)$(PREFIX)/lib/pkgconfig/spat.pc
	rm -rf $(DESTDIR)$(PREFIX)/share/spatc

asan:
	$(MAKE) B=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" test
ubsan:
	$(MAKE) B=build-ubsan SAN="-fsanitize=undefined -fno-sanitize-recover=all" test
# SPAT_TEST_SMALL: the heavy suites with fewer random cases and smaller
# shapes (tests/small.h); every test still runs.
valgrind: all $(TEST_BINS)
	@SPAT_TEST_SMALL=1 VALGRIND="valgrind -q --error-exitcode=99 --leak-check=full" \
	  bash tests/run.sh $(TEST_BINS)
# ThreadSanitizer over the tests that run the library from several threads.
TSAN_TESTS := test_threads_api test_api test_api_query test_jit
tsan:
	$(MAKE) B=build-tsan SAN="-fsanitize=thread" $(TSAN_TESTS:%=build-tsan/tests/%)
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" B=build-tsan SUITES=0 \
	  bash tests/run.sh $(TSAN_TESTS:%=build-tsan/tests/%)

# ---- fuzzing (tests/fuzz/README.md) ----------------------------------------
#   make fuzz FUZZ_SECONDS=N   builds the libFuzzer targets with clang-19 and
#                              ASan+UBSan into $(FUZZ_B) and runs each for N s
#   make fuzz-build            only builds them
# make test replays the seeds and tests/fuzz/regress/ through the same target
# code linked with a tiny main() (tests/fuzz/fuzz_replay.c), built like the
# unit tests.  Keep this block together (and near the end).
FUZZ_TARGETS := front jit npy
FUZZ_B       ?= build-fuzz
FUZZ_CC      ?= clang-19
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer
FUZZ_REPLAY  := $(FUZZ_TARGETS:%=$(B)/tests/fuzz_%_replay)

FUZZ_CFLAGS   = $(CFLAGS_BASE) $(INC_COMPILER) -Icli -Itests/fuzz
FUZZ_LINK     = $(CLI_LIB) $(B)/libspat-internal.a $(LIBS) $(BLAS_LIBS) $(CLI_LIBS)

$(B)/tests/fuzz_%_replay: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_replay.c tests/fuzz/fuzz_common.h $(B)/libspat-internal.a $(CLI_LIB) | $(DEPS_STAMP)
	@mkdir -p $(B)/tests
	$(CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_$*.c tests/fuzz/fuzz_replay.c $(FUZZ_LINK)

# Only with CC=clang-19 (make fuzz-build sets it): libFuzzer's own main().
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(B)/libspat-internal.a $(CLI_LIB) | $(DEPS_STAMP)
	@mkdir -p $(B)/fuzz
	$(CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LINK)

test: $(FUZZ_REPLAY)

.PHONY: fuzz fuzz-build fuzz-clean
fuzz-build: | $(DEPS_STAMP)
	$(MAKE) B=$(FUZZ_B) CC=$(FUZZ_CC) SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz/fuzz_%)

fuzz: fuzz-build
	@FUZZ_B=$(FUZZ_B) bash tests/fuzz/run-fuzzers.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean: fuzz-clean
fuzz-clean:
	rm -rf $(FUZZ_B)

clean:
	rm -rf $(B) build-asan build-ubsan build-tsan

-include $(LIB_OBJS:.o=.d) $(DRIVER_OBJS:.o=.d) $(BENCH_OBJS:.o=.d) $(TEST_BINS:=.d)
