/**
 * The watch suites again, with every Reader pulling through PULL (src/watch/pull-now.ts) as
 * the transports do, instead of next(): the same messages, at the same times, in the same order.
 */
import { useReadMode } from "./hub-reader";

useReadMode("pull");
/* eslint-disable @typescript-eslint/no-require-imports */
require("./watch-hub.test");
require("./watch-group.test");
require("./watch-batch-order.test");
require("./watch-hub-slices.test");
require("./watch-hub-live-statuses.test");
