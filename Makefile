# PGXS build: make, make install, make installcheck.
EXTENSION = replica_router
MODULE_big = replica_router
# src/core: decisions, lag, conninfo rules, the poller, parsers; plain C++ and
# libpq, unit-tested without a server. src/pg: everything that talks to the
# server (worker, SPI, shared memory, SQL functions).
CORE_SRCS = $(wildcard src/core/*.cpp)
PG_SRCS = $(wildcard src/pg/*.cpp)
SRCS = $(CORE_SRCS) $(PG_SRCS)
OBJS = $(SRCS:.cpp=.o)
# Update scripts of unreleased versions are built from extension/updates and
# extension/objects (scripts/build-sql.sh); released ones are plain files.
SQL_BUILT = $(patsubst extension/updates/%.sql,extension/replica_router--%.sql,$(wildcard extension/updates/*.sql))
DATA = $(filter-out $(SQL_BUILT),$(wildcard extension/replica_router--*.sql))
DATA_built = $(SQL_BUILT)

PG_CONFIG ?= pg_config

# Regression tests run against a temporary instance with the library preloaded.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-config=$(CURDIR)/test/regress.conf --temp-instance=$(CURDIR)/tmp_check_regress --load-extension=replica_router

# Isolation tests (pg_isolation_regress): concurrent registry and route
# changes, specs/*.spec with expected/isolation_*.out, against a temporary
# instance configured like the regression tests'.
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ISOLATION_OPTS = --temp-config=$(CURDIR)/test/regress.conf --temp-instance=$(CURDIR)/tmp_check_iso --load-extension=replica_router

# Multi-node TAP tests (PostgreSQL::Test::Cluster), run by PGXS's
# prove_installcheck after the two above; test/tap holds RRTest.pm (see the
# PG_PROVE_FLAGS line after the include). scripts/run-tap.sh runs the same
# files for the suite.
TAP_TESTS = 1
PROVE_TESTS = $(sort $(wildcard test/tap/*.pl))

PG_CXXFLAGS = -std=c++20 -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-register $(if $(WERROR),-Werror) $(EXTRA_CXXFLAGS)
PG_CPPFLAGS = -Isrc/core -Isrc/pg -I$(libpq_srcdir) -I$(shell $(PG_CONFIG) --includedir)
SHLIB_LINK = -lpq -lstdc++ $(EXTRA_LDFLAGS)

# No LLVM bitcode for C++ sources: JIT inlining is for the core's C code.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The TAP files' own modules (RRTest.pm, FakePg.pm); PROVE_FLAGS stays free
# for the caller (e.g. PROVE_FLAGS=--verbose).
PG_PROVE_FLAGS += -I test/tap

$(SQL_BUILT): extension/replica_router--%.sql: extension/updates/%.sql $(wildcard extension/objects/*.sql) scripts/build-sql.sh
	scripts/build-sql.sh

# Headers are few and shared: any change rebuilds every object.
$(OBJS): $(wildcard src/core/*.hpp src/pg/*.hpp)

# The fence: core files are compiled without the server's include directory,
# so one that includes a PostgreSQL header does not build.
$(CORE_SRCS:.cpp=.o): CPPFLAGS = -Isrc/core -I$(shell $(PG_CONFIG) --includedir) -D_GNU_SOURCE

# The client program replica_router (tools/cli: subcommands check, follow,
# serve; plain libpq, no server headers), also installed under its old names
# replica_router_check and replica_router_follower (symlinks: invoked so, it
# is that subcommand). Its --version is the extension's default_version.
# LINK_DIR=/usr/local/bin also links the three names there (PATH).
RR_VERSION := $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" $(CURDIR)/replica_router.control)
CLI_SRCS = $(wildcard tools/cli/*.cpp)
# The Prometheus exposition is the extension's own (src/core), so serve's
# /metrics and the SQL metrics() never differ.
CLI_CORE_SRCS = src/core/exposition.cpp
CLI_OBJS = $(patsubst tools/cli/%.cpp,tools/cli/obj/%.o,$(CLI_SRCS)) $(patsubst src/core/%.cpp,tools/cli/obj/core_%.o,$(CLI_CORE_SRCS))
# -Wno-maybe-uninitialized: GCC 12 reports false positives inside <regex>
# (which cpp-httplib uses) when built with -fsanitize=address (the suite's ASan stage).
CLI_CXXFLAGS = -std=c++20 -O2 -g -Wall -Wextra -Wno-maybe-uninitialized $(if $(WERROR),-Werror) -DRR_VERSION='"$(RR_VERSION)"' \
	-Isrc/core -I$(shell $(PG_CONFIG) --includedir) $(shell pkg-config --cflags cpp-httplib) $(EXTRA_CXXFLAGS)
CLI_LIBS = -L$(shell $(PG_CONFIG) --libdir) -lpq $(shell pkg-config --libs cpp-httplib) -pthread $(EXTRA_LDFLAGS)
TOOL_NAMES = replica_router_check replica_router_follower
TOOLS = tools/replica_router $(addprefix tools/,$(TOOL_NAMES))
all: $(TOOLS)
tools/cli/obj/%.o: tools/cli/%.cpp $(wildcard tools/cli/*.hpp) replica_router.control
	@mkdir -p tools/cli/obj
	$(CXX) $(CLI_CXXFLAGS) -c $< -o $@
tools/cli/obj/core_%.o: src/core/%.cpp src/core/%.hpp
	@mkdir -p tools/cli/obj
	$(CXX) $(CLI_CXXFLAGS) -c $< -o $@
tools/replica_router: $(CLI_OBJS)
	$(CXX) $(CLI_CXXFLAGS) $^ $(CLI_LIBS) -o $@
$(addprefix tools/,$(TOOL_NAMES)): tools/replica_router
	ln -sf replica_router $@
install: install-tools
# A DESTDIR install (the Debian packages: pg_buildext) starts from an empty
# tree, where bindir does not exist yet.
install-tools: $(TOOLS)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) tools/replica_router '$(DESTDIR)$(bindir)/'
	for n in $(TOOL_NAMES); do ln -sf replica_router '$(DESTDIR)$(bindir)'/$$n; done
	$(if $(LINK_DIR),for n in replica_router $(TOOL_NAMES); do ln -sf '$(bindir)'/$$n '$(DESTDIR)$(LINK_DIR)'/$$n; done)
clean: clean-tools
clean-tools:
	rm -rf $(TOOLS) tools/cli/obj

.PHONY: test install-tools clean-tools
test:
	./scripts/test.sh
