/* A stock fallback object as a server hands it out (`.filez`: header,
 * raw deflate), checked as deltafetch checks a download
 * (dfi_stock_fallback_verify()). The declared size is read from where the
 * header keeps it, so well-formed inputs get past the size check. */
#include <sys/mman.h>
#include <unistd.h>

#include "df-stock.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  DfStockFallback fb = { .objtype = OSTREE_OBJECT_TYPE_FILE, .size = size };
  if (size >= 16)
    {
      guint64 be;
      memcpy (&be, data + 8, 8);
      fb.usize = GUINT64_FROM_BE (be);
    }
  int fd = memfd_create ("filez", MFD_CLOEXEC);
  if (fd < 0)
    return 0;
  if (size == 0 || write (fd, data, size) == (gssize)size)
    {
      g_autoptr (GError) error = NULL;
      dfi_stock_fallback_verify (fd, size, &fb, NULL, &error);
    }
  close (fd);
  return 0;
}
