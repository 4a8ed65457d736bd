# spatc: a compiler for sparse attention patterns.
#   make            libspat.a, libspat.so, $(B)/spatc
#   make test       unit, golden-diagnostic, differential and CLI tests
#   make demo       JIT a library pattern, check it against the interpreter, time it
#   make bench      the README's performance table
#   make install PREFIX=/usr/local    make uninstall PREFIX=...
# A missing tool (flex, bison, LLVM 19, cmocka, ...) is installed first by
# scripts/install-deps.sh (apt-get, Debian 12).

PREFIX      ?= /usr/local
CC          ?= cc
LLVM_CONFIG ?= /usr/lib/llvm-19/bin/llvm-config
BISON       ?= bison
FLEX        ?= flex
B           := build

WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
OPT     ?= -O2 -g
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -fPIC -fvisibility=hidden \
             -I$(B)/gen -Icompiler -Iruntime -Iinclude \
             -isystem $(shell $(LLVM_CONFIG) --includedir) $(CFLAGS) $(SAN)
GEN_CFLAGS = $(filter-out -Wpedantic -Wmissing-prototypes,$(CFLAGS_ALL)) -Wno-unused-function -Wno-sign-compare -Wno-unused-but-set-variable
LIBS     = -L$(shell $(LLVM_CONFIG) --libdir) -Wl,-rpath,$(shell $(LLVM_CONFIG) --libdir) \
           -lLLVM-19 -lffi -lpthread -lm $(SAN)
BLAS_LIBS = -lopenblas

# Sources: the library is every compiler/ and runtime/ file but the driver.
DRIVER_SRCS := $(wildcard compiler/spatc*.c)
LIB_SRCS    := $(filter-out $(DRIVER_SRCS),$(wildcard compiler/*.c runtime/*.c))
GEN_SRCS    := $(B)/gen/parser.c $(B)/gen/lexer.c
LIB_OBJS    := $(LIB_SRCS:%.c=$(B)/%.o) $(GEN_SRCS:%.c=%.o)
DRIVER_OBJS := $(DRIVER_SRCS:%.c=$(B)/%.o)
# bench/ baselines: only in the driver (spatc bench), built for speed.
BENCH_OBJS  := $(B)/bench/baselines.o
TEST_SRCS   := $(wildcard tests/unit/test_*.c)
TEST_BINS   := $(TEST_SRCS:tests/unit/%.c=$(B)/tests/%)
DEPS_STAMP  := $(B)/.deps-ok

.PHONY: all test demo bench bench-peers install uninstall clean asan ubsan valgrind deps
all: $(B)/libspat.a $(B)/libspat.so $(B)/spatc

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/install-deps.sh
	@mkdir -p $(B)
	@bash scripts/install-deps.sh
	@touch $@

$(B)/gen/parser.c $(B)/gen/parser.h: grammar/parser.y | $(DEPS_STAMP)
	@mkdir -p $(B)/gen
	$(BISON) -Wall -Werror --defines=$(B)/gen/parser.h -o $(B)/gen/parser.c $<

$(B)/gen/lexer.c $(B)/gen/lexer.h: grammar/lexer.l $(B)/gen/parser.h | $(DEPS_STAMP)
	@mkdir -p $(B)/gen
	$(FLEX) --header-file=$(B)/gen/lexer.h -o $(B)/gen/lexer.c $<

$(B)/gen/%.o: $(B)/gen/%.c
	$(CC) $(GEN_CFLAGS) -MMD -MP -c $< -o $@

$(B)/%.o: %.c | $(DEPS_STAMP) $(B)/gen/parser.h $(B)/gen/lexer.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(B)/bench/%.o: bench/%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out $(OPT),$(CFLAGS_ALL)) -O3 -march=native -ffast-math -MMD -MP -c $< -o $@

$(B)/libspat.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/libspat.so: $(LIB_OBJS)
	$(CC) -shared -o $@ $^ $(LIBS)

$(B)/spatc: $(DRIVER_OBJS) $(BENCH_OBJS) $(B)/libspat.a
	@mkdir -p $(B)
	$(CC) -o $@ $(DRIVER_OBJS) $(BENCH_OBJS) $(B)/libspat.a $(LIBS) $(BLAS_LIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libspat.a | $(DEPS_STAMP)
	@mkdir -p $(B)/tests
	$(CC) $(CFLAGS_ALL) -Itests -MMD -MP -o $@ $< $(B)/libspat.a -lcmocka $(LIBS) $(BLAS_LIBS)

test: all $(TEST_BINS)
	@B=$(B) SAN="$(SAN)" bash tests/run.sh $(TEST_BINS)

$(B)/demo: bench/demo.c $(B)/libspat.a
	$(CC) $(CFLAGS_ALL) -o $@ $< $(B)/libspat.a $(LIBS)

demo: all $(B)/demo
	@B=$(B) bash scripts/demo.sh

bench: all
	@bash bench/run.sh

bench-peers: all
	@bash bench/peers.sh

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
valgrind: all $(TEST_BINS)
	@VALGRIND="valgrind -q --error-exitcode=99 --leak-check=full" bash tests/run.sh $(TEST_BINS)

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

$(B)/tests/fuzz_%_replay: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_replay.c tests/fuzz/fuzz_common.h $(B)/libspat.a | $(DEPS_STAMP)
	@mkdir -p $(B)/tests
	$(CC) $(CFLAGS_ALL) -Itests/fuzz -o $@ tests/fuzz/fuzz_$*.c tests/fuzz/fuzz_replay.c $(B)/libspat.a $(LIBS)

# Only with CC=clang-19 (make fuzz-build sets it): libFuzzer's own main().
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(B)/libspat.a | $(DEPS_STAMP)
	@mkdir -p $(B)/fuzz
	$(CC) $(CFLAGS_ALL) -Itests/fuzz -fsanitize=fuzzer -o $@ $< $(B)/libspat.a $(LIBS)

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
	rm -rf $(B) build-asan build-ubsan

-include $(LIB_OBJS:.o=.d) $(DRIVER_OBJS:.o=.d) $(BENCH_OBJS:.o=.d) $(TEST_BINS:=.d)
