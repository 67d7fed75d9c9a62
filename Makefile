# storefront: top-level build.
#
#   make            install missing Debian packages, build engine and module
#   make engine     build/libstorefront.a, build/storefrontctl,
#                   build/tests/test_*, build/bench/*
#   make module     build/nginx/ngx_http_storefront_module.so (Debian nginx)
#   make test       build everything, run all tests, print a summary
#   make demo       start the demo on 127.0.0.1:8080 (scripts/demo.sh)
#   make clean      remove build/

SHELL      := /bin/bash
CC         ?= cc
CFLAGS     := -std=c11 -D_GNU_SOURCE -O2 -g -fPIC -Wall -Wextra -Werror \
              $(EXTRA_CFLAGS)
CPPFLAGS   += -Iengine
DEPFLAGS    = -MMD -MP
LDLIBS     := -llmdb -lyajl -lm
AR         := ar

B          := build
LIB        := $(B)/libstorefront.a

ENGINE_SRCS := $(wildcard engine/sf_*.c)
ENGINE_OBJS := $(patsubst engine/%.c,$(B)/obj/%.o,$(ENGINE_SRCS))
TEST_SRCS   := $(wildcard engine/tests/test_*.c)
TEST_BINS   := $(patsubst engine/tests/%.c,$(B)/tests/%,$(TEST_SRCS))
BENCH_SRCS  := $(wildcard engine/bench/*.c)
BENCH_BINS  := $(patsubst engine/bench/%.c,$(B)/bench/%,$(BENCH_SRCS))
CTL         := $(if $(wildcard engine/storefrontctl.c),$(B)/storefrontctl)

# nginx module against Debian's nginx-dev (configure scripts + headers).
# NGX_CC_OPT / NGX_LD_OPT: extra compiler and linker options for it (the
# sanitizer build, scripts/test_asan.sh).
NGX_DEV     ?= /usr/share/nginx/src
NGX_SRC     := $(B)/nginx-src
NGX_BUILD   := $(CURDIR)/$(B)/nginx
MODULE      := $(B)/nginx/ngx_http_storefront_module.so
MODULE_C    := $(wildcard ngx_module/*.c engine/sf_*.c)
MODULE_H    := $(wildcard ngx_module/*.h engine/*.h)
# Two builds at once in one tree (a developer and a test run) must not
# configure or link into build/nginx together.
NGX_LOCK    := flock $(B)/.nginx.lock

.PHONY: all deps engine module test demo clean FORCE

# Packages first, then engine and module (in parallel with -j nproc).
all:
	@scripts/build.sh

# Installs the Debian packages that are missing (nothing when all present).
deps:
	@scripts/build.sh deps

engine: $(LIB) $(CTL) $(TEST_BINS) $(BENCH_BINS)

$(B)/obj/%.o: engine/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(LIB): $(ENGINE_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

# the command-line tool: storefrontctl.c dispatches to one ctl_*.c per concern
CTL_SRCS    := engine/storefrontctl.c $(wildcard engine/ctl_*.c)

$(B)/storefrontctl: $(CTL_SRCS) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) $(CTL_SRCS) -o $@ $(LIB) $(LDLIBS)

$(B)/tests/%: engine/tests/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Iengine/tests $(CFLAGS) $(DEPFLAGS) $< -o $@ \
	    $(LIB) $(LDLIBS)

$(B)/bench/%: engine/bench/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Iengine/bench $(CFLAGS) $(DEPFLAGS) $< -o $@ \
	    $(LIB) $(LDLIBS)

# ---- the dynamic module ----------------------------------------------------

ifeq ($(wildcard config),)
module:
	@echo "module: no ./config yet, skipping the nginx module" >&2
else
module: $(MODULE)
endif

$(NGX_SRC)/configure:
	@test -x $(NGX_DEV)/configure || \
	    { echo "$(NGX_DEV) missing: install nginx-dev" >&2; exit 1; }
	rm -rf $(NGX_SRC)
	@mkdir -p $(B)
	cp -a $(NGX_DEV) $(NGX_SRC)

# The list of module source files: configure is re-run when it changes
# (config lists the files), not when their contents change.
$(B)/module-sources: FORCE
	@mkdir -p $(@D)
	@echo '$(sort $(MODULE_C) $(MODULE_H))' | cmp -s - $@ 2>/dev/null || \
	    echo '$(sort $(MODULE_C) $(MODULE_H))' > $@

$(B)/nginx/Makefile: config $(NGX_SRC)/configure $(B)/module-sources
	@echo "configuring nginx module build (log: $(B)/nginx-configure.log)"
	@$(NGX_LOCK) bash -c 'cd $(NGX_SRC) && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        $(if $(NGX_CC_OPT),--with-cc-opt="$(NGX_CC_OPT)") \
	        $(if $(NGX_LD_OPT),--with-ld-opt="$(NGX_LD_OPT)") \
	        --add-dynamic-module=$(CURDIR) --builddir=$(NGX_BUILD)' \
	        > $(B)/nginx-configure.log 2>&1 || \
	    { tail -n 30 $(B)/nginx-configure.log >&2; exit 1; }
	@find $(B)/nginx/addon -name '*.o' -delete 2>/dev/null || true
	@touch $@

# nginx's Makefile tracks .c files; a changed header forces the module's
# objects to be rebuilt (cheap: only the addon objects; configure made the
# directories, which stay).
$(MODULE): $(B)/nginx/Makefile $(MODULE_C) $(MODULE_H)
	@if [ -n "$(filter %.h,$?)" ]; then \
	    find $(B)/nginx/addon -name '*.o' -delete 2>/dev/null || true; fi
	$(NGX_LOCK) $(MAKE) -C $(NGX_SRC) -f $(NGX_BUILD)/Makefile modules
	@touch $@

# ---- tests, demo -----------------------------------------------------------

test:
	@scripts/test.sh

demo:
	@scripts/demo.sh

clean:
	rm -rf $(B)

-include $(wildcard $(B)/obj/*.d $(B)/tests/*.d $(B)/bench/*.d $(B)/*.d)
