import EventCodegenCoreForFuzzing
import FuzzSupport

/// One input is one events.yaml file, through the pipeline `socket-gateway-codegen` runs: libyaml, then the
/// catalog parser and validator, then every renderer for a catalog that validates. Properties: nothing traps
/// (libyaml's C code runs under AddressSanitizer too), and a refused catalog comes with at least one diagnostic
/// that names the file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCatalog(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = InputFile(path: "fuzz/events.yaml", contents: Array(fuzzInput(data, size)))
    let catalog: Catalog
    do {
        catalog = try GeneratorPipeline.parseCatalog(input)
    } catch {
        let text = "\(error)"
        guard text.contains("fuzz/events.yaml") else { fuzzFailure("a refusal without a diagnostic: \(text)") }
        return 0
    }
    for format in OutputFormat.allCases {
        let rendered = GeneratorPipeline.render(catalog, as: format)
        guard rendered == GeneratorPipeline.render(catalog, as: format) else {
            fuzzFailure("rendering \(format) is not deterministic")
        }
    }
    return 0
}
