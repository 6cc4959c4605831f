-- wrk script for bench/events: every request is a manifest PUT of a new
-- manifest under a new tag (PREFIX-THREAD-N), all naming one config blob
-- pushed before. An annotation makes each manifest distinct, as a push of
-- a new image is.
--   wrk -s events_put.lua URL -- REPO PREFIX CONFIG_DIGEST CONFIG_SIZE
local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

function init(args)
   repo, prefix, config, size = args[1], args[2], args[3], args[4]
   n = 0
end

function request()
   n = n + 1
   local tag = prefix .. "-" .. tid .. "-" .. n
   local body = '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
      .. '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"' .. config
      .. '","size":' .. size .. '},"layers":[],"annotations":{"bench":"' .. tag .. '"}}'
   return wrk.format("PUT", "/v2/" .. repo .. "/manifests/" .. tag,
      { ["Content-Type"] = "application/vnd.oci.image.manifest.v1+json" }, body)
end
