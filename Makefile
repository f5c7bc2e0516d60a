# PGXS build: make, make install, make installcheck.
EXTENSION = replica_router
MODULE_big = replica_router
SRCS = $(wildcard src/*.cpp)
OBJS = $(SRCS:.cpp=.o)
DATA = $(wildcard extension/replica_router--*.sql)

PG_CONFIG ?= pg_config

# Regression tests run against a temporary instance with the library preloaded.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-config=$(CURDIR)/test/regress.conf --temp-instance=$(CURDIR)/tmp_check_regress --load-extension=replica_router

PG_CXXFLAGS = -std=c++20 -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-register $(if $(WERROR),-Werror) $(EXTRA_CXXFLAGS)
PG_CPPFLAGS = -I$(libpq_srcdir) -I$(shell $(PG_CONFIG) --includedir)
SHLIB_LINK = -lpq -lstdc++ $(EXTRA_LDFLAGS)

# No LLVM bitcode for C++ sources: JIT inlining is for the core's C code.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Headers are few and shared: any change rebuilds every object.
$(OBJS): $(wildcard src/*.hpp)

# The Nagios-style check command (a plain libpq client).
CHECK_BIN = tools/replica_router_check
all: $(CHECK_BIN)
$(CHECK_BIN): tools/replica_router_check.cpp
	$(CXX) -std=c++20 -O2 -g -Wall -Wextra $(if $(WERROR),-Werror) -I$(shell $(PG_CONFIG) --includedir) $< \
		-L$(shell $(PG_CONFIG) --libdir) -lpq -o $@
install: install-check-bin
install-check-bin: $(CHECK_BIN)
	$(INSTALL_PROGRAM) $(CHECK_BIN) '$(DESTDIR)$(bindir)/replica_router_check'
clean: clean-check-bin
clean-check-bin:
	rm -f $(CHECK_BIN)

.PHONY: test install-check-bin clean-check-bin
test:
	./scripts/test.sh
