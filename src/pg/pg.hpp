// The PostgreSQL side of the boundary. Files that include this may call
// PostgreSQL (which can ereport and longjmp), so they keep no object with a
// destructor alive across such calls; see guard.hpp for the crossings.
#pragma once

extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include "hint.hpp"

static_assert(sizeof(rr::Micros) == sizeof(TimestampTz), "hint timestamps are TimestampTz");
static_assert(sizeof(rr::Lsn) == sizeof(XLogRecPtr), "hint LSNs are XLogRecPtr");

// SQLSTATE for "no replica qualifies and fallback_to_primary is off".
#define ERRCODE_RR_NO_REPLICA MAKE_SQLSTATE('R', 'R', '0', '0', '1')
#define ERRCODE_RR_NO_PRIMARY MAKE_SQLSTATE('R', 'R', '0', '0', '2')
