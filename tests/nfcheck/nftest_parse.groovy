// Syntax-check nf-test files (Groovy DSL) and nf-test.config: parse each to an AST (Groovy's
// CONVERSION phase: syntax only, no class resolution). Prints OK/FAIL per file; exit 1 on a failure.
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases

int bad = 0
args.each { f ->
    try {
        def unit = new CompilationUnit(new CompilerConfiguration())
        unit.addSource(new File(f))
        unit.compile(Phases.CONVERSION)
        println "OK   ${f}"
    } catch (CompilationFailedException e) {
        bad++
        def where = e.message.readLines().find { it.contains('@ line') } ?: e.message.readLines().take(2).join(' ')
        println "FAIL ${f}: ${where}"
    }
}
System.exit(bad ? 1 : 0)
