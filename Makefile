# sse-fcgi — plain Makefile, pkg-config for the libraries (libfcgi, hiredis, libconfuse,
# libcrypto, jansson).
#
#   make                 build ./sse-fcgi
#   make SANITIZE=1      build build/san/sse-fcgi with AddressSanitizer + UBSan
#   make test            install missing packages, unit tests, integration tests,
#                        then the same suite again under SANITIZE=1
#   make unit            cmocka unit tests only (honours SANITIZE=1)
#   make fuzz            every libFuzzer target in tests/fuzz/ for FUZZ_SECONDS (60) each
#   make install         PREFIX=/usr/local DESTDIR= (honours sysconfdir): binary, config,
#                        man page, systemd units, examples; make uninstall removes them.
#                        The config goes to $(sysconfdir)/sse-fcgi (/etc whatever the PREFIX:
#                        every example, unit and the man page name /etc/sse-fcgi/sse-fcgi.conf)
#   make deb             build/deb/sse-fcgi_<version>_<arch>.deb with dpkg-buildpackage
#                        (from a copy of this tree in build/deb/; needs debhelper)

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
sysconfdir ?= /etc
DESTDIR    ?=
VERSION    := 0.1.0

CC      ?= cc
PKGS    := fcgi hiredis libconfuse libcrypto jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wno-format-nonliteral -Wvla
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Isrc -Ifcgi $(PKG_CFLAGS) \
           -DSSE_FCGI_VERSION='"$(VERSION)"' -DSSE_FCGI_SYSCONFDIR='"$(sysconfdir)"' -MMD -MP

ifeq ($(SANITIZE),1)
O       := build/san
BIN     := build/san/sse-fcgi
ALL_CFLAGS += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
O       := build/obj
BIN     := sse-fcgi
ALL_CFLAGS += -D_FORTIFY_SOURCE=2
endif

CORE_SRC := $(filter-out src/main.c,$(wildcard src/*.c)) $(wildcard fcgi/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(O)/%.o)
MAIN_OBJ := $(O)/src/main.o
LIB      := $(O)/libssefcgi.a
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(O)/tests/%)

# libFuzzer targets: every tests/fuzz/fuzz_NAME.c is one, built with clang against the
# core compiled again with coverage, ASan and UBSan; its seeds are tests/fuzz/corpus/NAME/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_O       := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE $(WARN) -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
                -Isrc -Ifcgi $(PKG_CFLAGS) -DSSE_FCGI_VERSION='"$(VERSION)"' \
                -DSSE_FCGI_SYSCONFDIR='"$(sysconfdir)"' -MMD -MP
FUZZ_LIB     := $(FUZZ_O)/libssefcgi.a
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_O)/%)

.PHONY: all unit test check integration deps install uninstall clean bench soak run valgrind deb \
        fuzz fuzz-build fuzz-smoke
all: $(BIN)

$(BIN): $(MAIN_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(LIB) $(PKG_LIBS)

$(LIB): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(O)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $(TEST_WRAP) -o $@ $< $(LIB) $(PKG_LIBS) $(CMOCKA_LIBS)

# test_server injects failures into the loop calls that server, conn and out make.
$(O)/tests/test_server: TEST_WRAP := -Wl,--wrap=ev_timer_start,--wrap=ev_io_add,--wrap=ev_io_set,--wrap=pace_due
# test_hub: a Redis connection whose retry timer cannot be armed.
$(O)/tests/test_hub: TEST_WRAP := -Wl,--wrap=ev_timer_start

$(FUZZ_LIB): $(CORE_SRC:%.c=$(FUZZ_O)/%.o)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_O)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(PKG_LIBS)

fuzz-build: $(FUZZ_BIN)

# Each target for FUZZ_SECONDS over its seeds; what it learns goes to build/fuzz/corpus/,
# a crash to build/fuzz/crash-*. The seeds in the tree are only read.
# `make fuzz FUZZ_TARGETS="fcgi_head sse"` runs a few.
FUZZ_TARGETS ?= $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
# FUZZ_QUIET=1 keeps libFuzzer's progress lines in build/fuzz/fuzz.log unless a target fails.
FUZZ_LOG = $(if $(FUZZ_QUIET),2>$(FUZZ_O)/fuzz.log || { tail -40 $(FUZZ_O)/fuzz.log; exit 1; })

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_O)/corpus/$$t tests/fuzz/corpus/$$t; \
	    echo "== fuzz_$$t, $(or $(FUZZ_FLAGS),$(FUZZ_SECONDS) s)"; \
	    $(FUZZ_O)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) -timeout=10 -rss_limit_mb=1024 \
	        -print_final_stats=1 -artifact_prefix=$(FUZZ_O)/crash-$$t- \
	        $(FUZZ_O)/corpus/$$t tests/fuzz/corpus/$$t $(FUZZ_LOG); \
	done

# The short pass `make test` runs: every target over its seeds, then a fixed number of
# mutations from a fixed seed, so that a pass or a failure repeats on every machine. What
# fresh exploration finds belongs to `make fuzz`; its crashes join the seeds as regressions.
fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=60 FUZZ_FLAGS="-seed=1 -runs=40000" FUZZ_QUIET=1

# Unit tests: every tests/unit/test_*.c is one cmocka binary.
unit: $(TEST_BIN)
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; $$t; done

# valgrind over every unit test binary, then integration runs with the backend itself
# under valgrind (spawn-fcgi starts `valgrind sse-fcgi`; any report fails the test).
VALGRIND_TESTS := delivery framing bad_requests slow_consumer sigterm heartbeat_half_request redis_restart \
                  jwt_bad_tokens jwt_rotation jwt_public_keys
valgrind: $(TEST_BIN) $(BIN)
	@set -e; for t in $(TEST_BIN); do echo "== valgrind $$t"; \
	    valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect $$t >/dev/null; done
	SSE_FCGI_BIN=$(abspath $(BIN)) SSE_FCGI_VALGRIND=1 /usr/bin/python3 tests/integration/run.py $(VALGRIND_TESTS)

deps:
	@sh tests/deps.sh

integration: $(BIN)
	SSE_FCGI_BIN=$(abspath $(BIN)) SANITIZE=$(SANITIZE) /usr/bin/python3 tests/integration/run.py

# The README's test command: everything, then everything again sanitized.
test check: deps
	$(MAKE) unit integration fuzz-smoke
	$(MAKE) SANITIZE=1 unit integration

# The demo: installs only what the build and the demo need, builds, runs in the foreground.
run:
	sh examples/run-demo.sh

# Where `make install` puts the man page, the systemd units and the examples. With
# PREFIX=/usr (a package) the units go where Debian keeps them, /lib/systemd/system.
MAN8DIR        ?= $(MANDIR)/man8
SYSTEMDUNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
DOCDIR         ?= $(PREFIX)/share/doc/sse-fcgi
DOC_EXAMPLES   := $(wildcard examples/nginx examples/lighttpd examples/apache examples/caddy \
                    examples/multi-server examples/php examples/python)
CONF_DEST      := $(DESTDIR)$(sysconfdir)/sse-fcgi/sse-fcgi.conf

# The units and examples name /usr/local/sbin/sse-fcgi and /etc/sse-fcgi/; installed
# copies name the real places. An existing, edited sse-fcgi.conf is kept (as dpkg keeps
# a changed conffile) and the shipped one is put beside it as sse-fcgi.conf.dist.
# Benchmark against Nchan (not part of `make test`): bench/README.md.
# BENCH_QUICK=1 for one short repetition; results land in bench/results/.
BENCH_LOAD := build/bench/sse-load
$(BENCH_LOAD): bench/sse-load.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow -o $@ $<

bench: $(BENCH_LOAD)
	@sh bench/deps.sh
	$(MAKE) $(BIN)
	SSE_FCGI_BIN=$(abspath $(BIN)) SSE_LOAD_BIN=$(abspath $(BENCH_LOAD)) /usr/bin/python3 bench/run.py
	SSE_FCGI_BIN=$(abspath $(BIN)) SSE_LOAD_BIN=$(abspath $(BENCH_LOAD)) /usr/bin/python3 bench/resume.py

# Soak with faults (not part of `make test`): bench/README.md. SOAK_MINUTES (60),
# SOAK_STREAMS (10000), SOAK_RATE (200) and more; results land in bench/results/.
soak:
	@sh tests/deps.sh soak
	$(MAKE) $(BIN)
	SSE_FCGI_BIN=$(abspath $(BIN)) /usr/bin/python3 bench/soak.py

install: $(BIN)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(sysconfdir)/sse-fcgi $(DESTDIR)$(MAN8DIR) \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DOCDIR)/examples
	install -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/sse-fcgi
	@if [ -f $(CONF_DEST) ] && ! cmp -s conf/sse-fcgi.conf $(CONF_DEST); then \
		install -m 0644 conf/sse-fcgi.conf $(CONF_DEST).dist; \
		echo "kept your $(CONF_DEST); the shipped one is $(CONF_DEST).dist"; \
	else \
		echo "install -m 0644 conf/sse-fcgi.conf $(CONF_DEST)"; \
		install -m 0644 conf/sse-fcgi.conf $(CONF_DEST); \
	fi
	gzip -9n -c man/sse-fcgi.8 > $(DESTDIR)$(MAN8DIR)/sse-fcgi.8.gz
	chmod 0644 $(DESTDIR)$(MAN8DIR)/sse-fcgi.8.gz
	for u in systemd/sse-fcgi.socket systemd/sse-fcgi@.service; do \
		sed -e 's|/usr/local/sbin/sse-fcgi|$(SBINDIR)/sse-fcgi|g' \
		    -e 's|/etc/sse-fcgi/|$(sysconfdir)/sse-fcgi/|g' $$u \
		    > $(DESTDIR)$(SYSTEMDUNITDIR)/$${u#systemd/} || exit 1; \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$${u#systemd/}; \
	done
	set -e; for d in $(DOC_EXAMPLES); do \
		install -d $(DESTDIR)$(DOCDIR)/$$d; \
		for f in $$d/*; do \
			sed -e 's|/usr/local/sbin/sse-fcgi|$(SBINDIR)/sse-fcgi|g' \
			    -e 's|/etc/sse-fcgi/|$(sysconfdir)/sse-fcgi/|g' $$f > $(DESTDIR)$(DOCDIR)/$$f || exit 1; \
			chmod 0644 $(DESTDIR)$(DOCDIR)/$$f; \
		done; \
	done
	for f in README.md docs/README-lighttpd-and-install.md; do \
		[ ! -f $$f ] || install -m 0644 $$f $(DESTDIR)$(DOCDIR)/; \
	done

# Removes what install put there. sse-fcgi.conf goes only when unchanged; an edited one
# stays (as with `apt remove`: delete it yourself to purge).
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/sse-fcgi $(DESTDIR)$(MAN8DIR)/sse-fcgi.8.gz \
		$(DESTDIR)$(SYSTEMDUNITDIR)/sse-fcgi.socket $(DESTDIR)$(SYSTEMDUNITDIR)/sse-fcgi@.service \
		$(CONF_DEST).dist
	@if [ -f $(CONF_DEST) ] && ! cmp -s conf/sse-fcgi.conf $(CONF_DEST); then \
		echo "kept $(CONF_DEST): it differs from the shipped one"; \
	else \
		echo "rm -f $(CONF_DEST)"; rm -f $(CONF_DEST); \
	fi
	rm -rf $(DESTDIR)$(DOCDIR)
	-rmdir $(DESTDIR)$(sysconfdir)/sse-fcgi 2>/dev/null

clean:
	rm -rf build sse-fcgi

# The Debian package, built from a copy of this tree so that dpkg-buildpackage's
# output (which it writes beside the source) lands in build/deb/ and the tree's own
# build stays as it is. The version is debian/changelog's, which must equal VERSION.
DEB_DIR := build/deb
deb:
	@v=$$(dpkg-parsechangelog -S Version); [ "$$v" = "$(VERSION)" ] || \
		{ echo "debian/changelog says $$v, the Makefile $(VERSION)"; exit 1; }
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/sse-fcgi-$(VERSION)
	tar --anchored --exclude=./build --exclude=./.git --exclude=./sse-fcgi --exclude=./node_modules \
		--exclude='*/__pycache__' -cf - . | tar -C $(DEB_DIR)/sse-fcgi-$(VERSION) -xf -
	cd $(DEB_DIR)/sse-fcgi-$(VERSION) && dpkg-buildpackage -us -uc -b
	@ls $(DEB_DIR)/*.deb

-include $(CORE_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(TEST_BIN:%=%.d) \
    $(CORE_SRC:%.c=$(FUZZ_O)/%.d) $(FUZZ_BIN:%=%.d)
